#!/usr/bin/env bash
# Installs the system packages the local stack and the tests need, when missing:
# PostgreSQL 15 server binaries, a JDK and Maven (for the Kafka broker), kcat,
# wrk (the query benchmark) and Prometheus (promtool, the alert tests). Needs root
# (or sudo) only when something is missing.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v kcat >/dev/null || command -v kafkacat >/dev/null || missing+=(kcat)
command -v wrk >/dev/null || missing+=(wrk)
command -v promtool >/dev/null || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start servers of their own; the stack and the tests run their own.
for started in postgresql prometheus; do
  if [[ " ${missing[*]} " == *" $started "* ]] && command -v service >/dev/null; then
    $sudo service "$started" stop >/dev/null 2>&1 || true
  fi
done
