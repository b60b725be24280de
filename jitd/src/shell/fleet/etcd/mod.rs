//! A blocking client of etcd v3 through its JSON gateway (grpc-gateway), over ureq.
