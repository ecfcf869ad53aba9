#!/bin/sh
# What `npm test` needs from the system besides Node and npm. It runs as the pretest script, so that a fresh
# machine stops here at once with the one line to run, instead of failing every backup (or TLS) test one by one. ssh is
# not on the list: the remote-daemon backup test stands in for it.
missing=""
for command in rsync openssl; do
  command -v "$command" >/dev/null 2>&1 || missing="$missing $command"
done
[ -z "$missing" ] && exit 0
echo "npm test needs${missing} (the backup tests run rsync, the TLS tests openssl), which is not installed; install it first: apt-get install -y${missing}" >&2
exit 1
