# /etc/ledger/ledger.hcl on ledger1.example.internal (1 of 3), run by ledger.service.
# The three VMs' embedded NATS servers form one JetStream cluster; every stream has a copy on
# each (replicas = 3), so one VM may be down and writes still commit on the other two.
#
# Open TCP 8200 (API) to clients and 6222 (cluster routes) to the other two VMs only: route
# traffic carries the encrypted log, and any host that reaches 6222 can join the cluster.

node_id  = "ledger1"
api_addr = "https://ledger1.example.internal:8200"

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/ledger/tls/ledger.crt"
  tls_key_file  = "/etc/ledger/tls/ledger.key"
}

storage "jetstream" {
  path     = "/var/lib/ledger/data"
  replicas = 3
  cluster {
    name   = "ledger"
    listen = "10.0.0.11:6222"
    routes = [
      "nats://ledger1.example.internal:6222",
      "nats://ledger2.example.internal:6222",
      "nats://ledger3.example.internal:6222",
    ]
  }
}
