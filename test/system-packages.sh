#!/bin/sh
# What `npm test` needs from the system besides Node and npm. It runs as the pretest script, so that a fresh
# machine stops here at once with the one line to run, instead of failing every backup (or TLS) test one by one. ssh,
# sshd and ip are for the lab tests (test/helpers/lab.ts: hosts made of network namespaces, backups over ssh);
# sshd is in /usr/sbin, off a normal user's PATH. etcd is for the replicated coordinators (test/helpers/etcd.ts).
# strace is for test/durable.test.ts (it counts the fsyncs a --durable daemon makes).
PATH="$PATH:/usr/sbin:/sbin"
missing=""
packages=""
for pair in rsync:rsync openssl:openssl ssh:openssh-client sshd:openssh-server ip:iproute2 etcd:etcd-server strace:strace; do
  command=${pair%%:*}
  command -v "$command" >/dev/null 2>&1 || { missing="$missing $command"; packages="$packages ${pair#*:}"; }
done
[ -z "$missing" ] && exit 0
echo "npm test needs${missing} (the backup, TLS, lab and etcd tests run it), which is not installed; install it first: apt-get install -y${packages}" >&2
exit 1
