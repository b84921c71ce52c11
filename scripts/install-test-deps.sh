#!/usr/bin/env bash
# Installs the Debian programs the test suite and benches use as real clients and peers
# (swaks, fetchmail, Postfix, Dovecot, isync, offlineimap, OpenDKIM, OpenDMARC, policyd-spf, PostgreSQL,
# the newsreaders, INN). Idempotent; skips apt when all are present.
set -euo pipefail
need=()
command -v swaks >/dev/null || need+=(swaks)
# swaks needs Net::SSLeay for --tls/--tlsc (SMTP tests of STARTTLS and port 465).
perl -MNet::SSLeay -e1 2>/dev/null || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
command -v fetchmail >/dev/null || need+=(fetchmail)
command -v smtp-source >/dev/null && command -v postconf >/dev/null || need+=(postfix)
command -v dovecot >/dev/null || need+=(dovecot-imapd dovecot-pop3d)
command -v mbsync >/dev/null || need+=(isync)
# offlineimap is packaged as offlineimap3 on Debian 12 (tests/server/imap/test_imap_sync_clients.py).
command -v offlineimap >/dev/null || need+=(offlineimap3)
# OpenDKIM: DKIM interop both ways (tests/server/mailauth/test_opendkim_interop.py runs
# `opendkim -t` in test mode; opendkim-tools has opendkim-testmsg and opendkim-genkey), and
# OpenDKIM in milter mode behind Postroom's milter client (tests/server/abuse/test_milter.py).
command -v opendkim >/dev/null && command -v opendkim-testmsg >/dev/null || need+=(opendkim opendkim-tools)
# Postfix doing the inbound checks the way admins assemble them (bench/mailauth.py's
# "postfix+checks" column): OpenDMARC as a milter beside OpenDKIM, policyd-spf as a policy
# service. dbconfig-no-thanks: OpenDMARC's optional report database is not wanted (without
# it apt pulls in dbconfig-mysql and a MariaDB client).
command -v opendmarc >/dev/null && command -v policyd-spf >/dev/null ||
  need+=(opendmarc dbconfig-no-thanks postfix-policyd-spf-python)
# sieve-connect: ManageSieve interop (tests/server/managesieve/test_managesieve_sieveconnect.py).
command -v sieve-connect >/dev/null || need+=(sieve-connect)
# sieve-test (Pigeonhole): the Sieve differential test (tests/sieve/test_sieve_differential.py).
command -v sieve-test >/dev/null || need+=(dovecot-sieve)
# Real newsreaders against the NNTP server (tests/server/nntp/test_nntp_newsreaders.py): suck
# reads a group into a batch and rpost (in the suck package) posts; tin is driven under tmux.
command -v suck >/dev/null && command -v rpost >/dev/null || need+=(suck)
command -v tin >/dev/null || need+=(tin)
command -v slrn >/dev/null || need+=(slrn)
command -v tmux >/dev/null || need+=(tmux)
# INN 2: the Usenet peer of the NNTP peering tests (tests/innpeer.py runs its own innd under a
# temporary directory; the system's INN is never started). Installed last, see below.
[ -x /usr/lib/news/bin/innd ] || need+=(inn2)
# MIT Kerberos: the KDC and kadmin.local/kinit for the throwaway realm of tests/kdc.py
# (tests/server/kerberos), and libkrb5-dev, which `pip install gssapi` builds against.
command -v krb5kdc >/dev/null && command -v kadmin.local >/dev/null && command -v kinit >/dev/null &&
  [ -e /usr/include/gssapi/gssapi.h ] || need+=(krb5-kdc krb5-admin-server krb5-user libkrb5-dev)
# PostgreSQL server binaries (initdb, pg_ctl, postgres under /usr/lib/postgresql/*/bin): the
# PostgreSQL store's tests start their own throwaway cluster (tests/pgcluster.py); psql comes along.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v psql >/dev/null || need+=(postgresql)
# rspamd: the spam scanner of the [rspamd] tests and junk training (tests/rspamdpeer.py runs its own
# offline instance under a temporary directory; the package's service is kept from starting below).
command -v rspamd >/dev/null || need+=(rspamd)
# ClamAV's clamd: tests/clamdpeer.py runs its own on loopback with a one-signature (EICAR)
# database made by the test (tests/server/abuse/test_clamav.py, bench/smtp.py --scanners);
# no freshclam, no download. The package's own clamd and freshclam are not started (policy-rc.d).
command -v clamd >/dev/null || [ -x /usr/sbin/clamd ] || need+=(clamav-daemon)
# Headless Chromium and its WebDriver: the web interface's browser tests (tests/browser.py, Selenium).
command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ] || need+=(chromium chromium-driver)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${need[*]} and not root; tests needing them will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
echo "postfix postfix/mailname string localhost.localdomain" | debconf-set-selections
echo "opendmarc opendmarc/dbconfig-install boolean false" | debconf-set-selections
# The packages' own daemons must not start: tests run their own instances.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
if [[ " ${need[*]} " == *" postgresql "* ]]; then
  # Debian's postgresql-NN postinst creates a system cluster "main" (and would start it on
  # port 5432). The tests never use it, so it is not created at all: postgresql-common reads
  # create_main_cluster from this drop-in (createcluster.conf includes createcluster.d/).
  # The policy-rc.d above already keeps any cluster from being started during the install.
  mkdir -p /etc/postgresql-common/createcluster.d
  printf '%s\n' "# scripts/install-test-deps.sh: tests run their own throwaway clusters" \
    "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/postroom-tests.conf
  pg_before=" $(pg_lsclusters -h 2>/dev/null | awk '{printf "%s/%s ", $1, $2}' || true)"
fi
apt-get update -qq
main=()
for p in "${need[@]}"; do [ "$p" = inn2 ] || main+=("$p"); done
[ ${#main[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${main[@]}" >/dev/null
if [[ " ${need[*]} " == *" inn2 "* ]]; then
  # inn2's postinst asks innconfval for its paths, which fails ("hostname does not resolve or
  # domain not set in inn.conf") where the hostname has no domain (containers, CI). apt unpacks
  # the package anyway; inn.conf then gets a domain: line and the configuration is finished.
  apt-get install -y -qq --no-install-recommends inn2 >/dev/null 2>&1 || true
  [ -f /etc/news/inn.conf ] || { echo "install-test-deps: inn2 did not unpack" >&2; exit 1; }
  if ! grep -Eq '^domain:[[:space:]]*[^[:space:]]' /etc/news/inn.conf; then
    sed -i -E 's/^#?[[:space:]]*domain:.*/domain: localdomain/' /etc/news/inn.conf
    grep -q '^domain:' /etc/news/inn.conf || echo 'domain: localdomain' >> /etc/news/inn.conf
  fi
  dpkg --configure -a
  [ -x /usr/lib/news/bin/innd ]
fi
if [[ " ${need[*]} " == *" postgresql "* ]]; then
  # Belt and braces: a cluster this install made anyway (an older postgresql-common that
  # ignores the drop-in) is stopped and set to manual start, never left running or enabled.
  pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
    case "$pg_before" in *" $ver/$name "*) continue ;; esac
    pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    echo manual > "/etc/postgresql/$ver/$name/start.conf"
  done
fi
if [[ " ${need[*]} " == *" rspamd "* ]]; then
  # tests/rspamdpeer.py runs its own rspamd; Debian's service stays off, after a reboot too.
  systemctl disable rspamd >/dev/null 2>&1 || update-rc.d rspamd disable >/dev/null 2>&1 || true
fi
if [[ " ${need[*]} " == *" clamav-daemon "* ]]; then
  # tests/clamdpeer.py runs its own clamd; Debian's clamd and freshclam (which would download
  # the signature databases) stay off, after a reboot too.
  for s in clamav-daemon clamav-freshclam; do
    systemctl disable "$s" >/dev/null 2>&1 || update-rc.d "$s" disable >/dev/null 2>&1 || true
  done
fi
