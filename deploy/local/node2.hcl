# Node 2 of a three-node Ledger cluster on one machine: each node runs its own embedded
# NATS server, and the three form one JetStream cluster with every stream on all three (R3).
#
#   cd deploy/local
#   ledger server -config=node1.hcl     # and node2.hcl, node3.hcl in two more terminals
#
# Paths are relative to the directory the node is started from: data/node2 here.
# For a laptop only: plain HTTP on loopback.

node_id  = "node2"
api_addr = "http://127.0.0.1:8202"

listener "tcp" {
  address     = "127.0.0.1:8202"
  tls_disable = true
}

storage "jetstream" {
  path     = "data/node2"
  replicas = 3
  cluster {
    name   = "ledger"
    listen = "127.0.0.1:6222"
    routes = ["nats://127.0.0.1:6221", "nats://127.0.0.1:6222", "nats://127.0.0.1:6223"]
  }
}
