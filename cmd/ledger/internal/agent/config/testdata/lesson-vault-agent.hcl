# vault-agent.hcl
auto_auth {
method "kubernetes" {
mount_path = "auth/kubernetes"
config = {
role = "myapp"
}
}
sink "file" {
config = {
path = "/tmp/vault-token"
}
}
}
template {
source = "/etc/vault/templates/db.tpl"
destination = "/app/config/database.env"
perms = 0600
command = "pkill -HUP myapp" # signal the app to reload
}
vault {
address = "https://vault.example.com:8200"
}
