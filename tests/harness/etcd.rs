//! A 3-member etcd cluster on loopback, started and stopped by the test that uses it.
