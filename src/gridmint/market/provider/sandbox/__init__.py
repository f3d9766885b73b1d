"""The process runtime's sandbox: bubblewrap namespaces, a user id, cgroup limits and a disk quota for each lease."""
