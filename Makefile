# notmuch-deliver: build, test, install, demo.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
# Where Debian's bash-completion, zsh and fish look for packages' completions.
BASHCOMPDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
# The LMTP server's socket and service templates (Docs/systemd/), with
# ExecStart naming the installed binary.
SYSTEMDDIR = $(DESTDIR)$(PREFIX)/lib/systemd/system
SYSTEMD_UNITS = notmuch-deliver-lmtp@.socket notmuch-deliver-lmtp@.service
# The watcher is the mailbox owner's own service: a user unit.
SYSTEMDUSERDIR = $(DESTDIR)$(PREFIX)/lib/systemd/user
SYSTEMD_USER_UNITS = notmuch-deliver-watch.service

# Debian packages the build and the tests need.
DEB_PACKAGES = notmuch libnotmuch-dev libgmime-3.0-dev pkg-config zlib1g-dev liblzma-dev libbz2-dev
# What `make deb` needs: dpkg-shlibdeps and dpkg-gencontrol, and lintian.
DEB_TOOLS = dpkg-dev lintian
# The end-to-end tests' real MTA, fetcher and POP3 server, and man and
# bash-completion for the installed package's test, systemd-analyze for
# the LMTP units (root only); isync, offlineimap3 and dovecot-imapd for the
# watcher with real sync tools; strace for the order of syncs and replies;
# afew (with pyinotify, for afew --watch) as the watcher's peer.
E2E_PACKAGES = postfix fetchmail dovecot-pop3d dovecot-core dovecot-sieve man-db bash-completion systemd isync offlineimap3 dovecot-imapd strace afew python3-pyinotify

SWIFT ?= swift
RELEASE_BIN = .build/release/notmuch-deliver
# One process runs per message, so the start is made cheap for the dynamic
# loader: a position-dependent executable has no 49,000 relative relocations
# to apply (and pages to copy); and one that exports none of its 3,700 Swift
# symbols (the driver's -rdynamic, for backtraces) is no longer searched
# first by each of the libraries' symbol lookups (0.3-0.4 ms less in ld.so).
RELEASE_LINK = -Xswiftc -Xclang-linker -Xswiftc -no-pie -Xlinker --no-export-dynamic

.PHONY: all deps deps-e2e deps-deb e2e build install uninstall deb test demo bench stress fuzz clean

all: build

# Installs only what is missing; apt-get runs as root, or through sudo.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

deps-deb:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_TOOLS)"

deps-e2e:
	@missing=""; for p in $(E2E_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections; \
	  echo "postfix postfix/mailname string test.example" | debconf-set-selections; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Real postfix (mailbox_command, pipe to virtual mailboxes) and fetchmail
# against dovecot, on loopback; our maildirsize read and recounted by
# dovecot's doveadm (quota.sh); our Sieve interpreter against Pigeonhole's
# sieve-test on a corpus of scripts and messages (sieve.sh); the Debian
# package installed, used and purged; the LMTP server against Python's
# smtplib and raw sockets (lmtp.py, which also runs without root), and real
# postfix delivering through it (postfix-lmtp.sh); the maildir watcher
# against notmuch new on a seeded sync tool's operations (watch.py: 4 seeds
# of 1,000), at the edges (watch-edges.py: an inotify queue overflow, no
# inotify watches left, a full disk, SIGTERM while another writer holds
# the lock), with mbsync and offlineimap syncing from dovecot's IMAP
# (watch-mbsync.py, watch-offlineimap.py), and beside afew --watch on the
# same workload (watch-afew.py). Those needing root say
# why without it and exit 77, and are counted as skipped, not passed.
e2e: build
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory deps-e2e deb || exit 1; fi; \
	passed=""; skipped=""; \
	for test in postfix fetchmail quota sieve deb lmtp lmtp-order postfix-lmtp watch watch-edges watch-mbsync watch-offlineimap watch-afew; do \
	  case $$test in deb) subject=$(DEB) ;; *) subject=$(RELEASE_BIN) ;; esac; \
	  case $$test in \
	    lmtp) python3 Tests/Integration/lmtp.py $$subject ;; \
	    lmtp-order) python3 Tests/Integration/lmtp_order.py $$subject ;; \
	    watch*) python3 Tests/Integration/$$test.py $$subject ;; \
	    *) bash Tests/Integration/$$test.sh $$subject ;; \
	  esac; status=$$?; \
	  case $$status in \
	    0) passed="$$passed $$test" ;; \
	    77) skipped="$$skipped $$test" ;; \
	    *) echo "FAILED: the $$test end-to-end test (exit status $$status)"; exit 1 ;; \
	  esac; \
	done; \
	echo "end-to-end tests passed:$${passed:- none}; skipped:$${skipped:- none}"

build: deps
	$(SWIFT) build -c release --static-swift-stdlib --disable-local-rpath $(RELEASE_LINK)

# The completion scripts are those swift-argument-parser generates from the
# built command, so they always match its options (bash's without the #!
# line: it is sourced, never run).
install: build
	install -d $(BINDIR) $(MANDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR) $(SYSTEMDDIR) $(SYSTEMDUSERDIR)
	install -m 0755 $(RELEASE_BIN) $(BINDIR)/notmuch-deliver
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@DATE@/$(RELEASE_DATE)/' Docs/notmuch-deliver.1 > $(MANDIR)/notmuch-deliver.1
	chmod 0644 $(MANDIR)/notmuch-deliver.1
	$(RELEASE_BIN) --generate-completion-script bash | sed '1{/^#!/d}' > $(BASHCOMPDIR)/notmuch-deliver
	$(RELEASE_BIN) --generate-completion-script zsh > $(ZSHCOMPDIR)/_notmuch-deliver
	$(RELEASE_BIN) --generate-completion-script fish > $(FISHCOMPDIR)/notmuch-deliver.fish
	chmod 0644 $(BASHCOMPDIR)/notmuch-deliver $(ZSHCOMPDIR)/_notmuch-deliver $(FISHCOMPDIR)/notmuch-deliver.fish
	for unit in $(SYSTEMD_UNITS); do \
	  sed 's|/usr/local/bin/notmuch-deliver|$(PREFIX)/bin/notmuch-deliver|' Docs/systemd/$$unit > $(SYSTEMDDIR)/$$unit && \
	  chmod 0644 $(SYSTEMDDIR)/$$unit || exit 1; \
	done
	for unit in $(SYSTEMD_USER_UNITS); do \
	  sed 's|/usr/local/bin/notmuch-deliver|$(PREFIX)/bin/notmuch-deliver|' Docs/systemd/$$unit > $(SYSTEMDUSERDIR)/$$unit && \
	  chmod 0644 $(SYSTEMDUSERDIR)/$$unit || exit 1; \
	done

uninstall:
	rm -f $(BINDIR)/notmuch-deliver $(MANDIR)/notmuch-deliver.1
	rm -f $(BASHCOMPDIR)/notmuch-deliver $(ZSHCOMPDIR)/_notmuch-deliver $(FISHCOMPDIR)/notmuch-deliver.fish
	for unit in $(SYSTEMD_UNITS); do rm -f $(SYSTEMDDIR)/$$unit; done
	for unit in $(SYSTEMD_USER_UNITS); do rm -f $(SYSTEMDUSERDIR)/$$unit; done

# A Debian binary package of `make install PREFIX=/usr`: the man page
# gzipped, README.md and the guides in /usr/share/doc/notmuch-deliver/ (the
# guides in Docs/, so that their links work), the copyright file and the
# changelog made from NEWS.md, lintian's overrides from Docs/debian/, Depends computed from the binary by
# dpkg-shlibdeps, and the LMTP server's systemd templates in
# /usr/lib/systemd/system (not enabled: an instance names its user). It is
# built in a scratch debian/ tree under .build/deb, then checked by lintian,
# which fails on errors.
VERSION := $(shell sed -n 's/^let notmuchDeliverVersion = "\(.*\)"$$/\1/p' Sources/notmuch-deliver/Version.swift)
# The release's date is its heading's in NEWS.md, "## VERSION (DATE)".
RELEASE_DATE := $(shell sed -n 's/^\#\# $(VERSION) (\(.*\))$$/\1/p' NEWS.md)
MAINTAINER := $(shell sed -n 's/^Maintainer: //p' Docs/debian/control)
DEB = notmuch-deliver_$(VERSION)_$(shell dpkg --print-architecture).deb
DEB_SCRATCH = .build/deb
DEB_ROOT = $(DEB_SCRATCH)/debian/notmuch-deliver
DEB_DOC = $(DEB_ROOT)/usr/share/doc/notmuch-deliver

deb: build deps-deb
	test "$$($(RELEASE_BIN) --version)" = "$(VERSION)"
	@test -n "$(RELEASE_DATE)" || { echo "NEWS.md has no '## $(VERSION) (DATE)' heading for the version in Version.swift"; exit 1; }
	rm -rf $(DEB_SCRATCH) && mkdir -p $(DEB_SCRATCH)/debian
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) PREFIX=/usr
	strip --remove-section=.comment --remove-section=.note --strip-unneeded $(DEB_ROOT)/usr/bin/notmuch-deliver
	gzip -9n $(DEB_ROOT)/usr/share/man/man1/notmuch-deliver.1
	install -d $(DEB_DOC)/Docs
	install -m 0644 README.md NEWS.md $(DEB_DOC)/
	install -m 0644 Docs/*.md $(DEB_DOC)/Docs/
	install -m 0644 Docs/debian/copyright $(DEB_DOC)/copyright
	install -D -m 0644 Docs/debian/lintian-overrides $(DEB_ROOT)/usr/share/lintian/overrides/notmuch-deliver
	awk -v maintainer="$(MAINTAINER)" -f Docs/debian/news-to-changelog.awk NEWS.md > $(DEB_SCRATCH)/debian/changelog
	gzip -9n < $(DEB_SCRATCH)/debian/changelog > $(DEB_DOC)/changelog.gz
	chmod 0644 $(DEB_DOC)/changelog.gz
	install -d -m 0755 $(DEB_ROOT)/DEBIAN
	cp Docs/debian/control $(DEB_SCRATCH)/debian/control
	cd $(DEB_SCRATCH) && dpkg-shlibdeps debian/notmuch-deliver/usr/bin/notmuch-deliver \
	  && dpkg-gencontrol -pnotmuch-deliver -Pdebian/notmuch-deliver
	cd $(DEB_ROOT) && find usr -type f -exec md5sum {} + | sort -k2 > DEBIAN/md5sums
	dpkg-deb --build --root-owner-group $(DEB_ROOT) $(DEB)
	lintian $(DEB)

# The tests run the built executable against real notmuch databases.
test: deps
	$(SWIFT) build
	$(SWIFT) test
	# The short form of `make stress` (concurrent deliveries, lock fights,
	# SIGKILLs) and the MTA tests run the binary `make install` installs,
	# with its release link flags.
	$(MAKE) --no-print-directory build
	python3 Tests/Stress/stress.py --deliver $(RELEASE_BIN) --workers 4 --messages 40
	# The same through the LMTP server, SIGKILLed and restarted every
	# 0.2 s on average (under 10 s).
	python3 Tests/Stress/stress.py --lmtp --deliver $(RELEASE_BIN) --workers 4 --messages 200 --kill-every 0.2
	# The maildir watcher SIGKILLed every 0.5 s on average while a sync
	# tool's file operations run (about 25 s).
	python3 Tests/Stress/stress.py --watch --deliver $(RELEASE_BIN) --operations 400 --kill-every 0.5 --seed 2
	$(MAKE) --no-print-directory e2e

# libFuzzer (with AddressSanitizer) on the project's own parsers: rules
# files, From_ stripping, mbox splitting, header reading. Never part of
# `make test`; FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	sh Tests/Fuzz/run.sh $(FUZZ_SECONDS)

demo: build
	sh Tests/scripts/demo.sh $(RELEASE_BIN)

# Figures against notmuch insert and notmuch new, and the LMTP server's
# (5-8; the postfix one needs root, else it is reported skipped, and has
# Dovecot's LMTP as a peer), and the watcher's (9-13, against notmuch new
# and afew); never part of `make test`. One figure:
# BENCH_ARGS="--only lmtp-burst"; the watcher's, smaller and quicker:
# BENCH_ARGS="--only watch --watch-size 20000".
bench: build
	@command -v mdeliver >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mblaze >/dev/null; } || true
	@[ -x /usr/lib/dovecot/lmtp ] || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-core dovecot-lmtpd >/dev/null; } || true
	@# afew: the watcher's peer (afew --tag --new after notmuch new; afew --watch needs pyinotify).
	@command -v afew >/dev/null && /usr/bin/python3 -c 'import pyinotify' 2>/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends afew python3-pyinotify >/dev/null; } || true
	python3 Tests/Bench/bench.py --deliver $(RELEASE_BIN) $(BENCH_ARGS)

# Nothing lost under load and kill -9: 8 deliverers x 2,000 messages.
# STRESS_ARGS=--quota=2M fills a quota too: every refusal 75, maildirsize right.
# Then the LMTP server: 8 clients x 2,000 messages, the server SIGKILLed and
# restarted, a notmuch tag loop timed (LMTP_STRESS_ARGS, e.g. --kill-every 1).
# Then the maildir watcher: 6,000 operations of a sync tool, the watcher
# SIGKILLed every 2 s on average and restarted (WATCH_STRESS_ARGS, e.g.
# --operations 20000 --kill-every 0.5 --seed 3).
stress: build
	python3 Tests/Stress/stress.py --deliver $(RELEASE_BIN) $(STRESS_ARGS)
	python3 Tests/Stress/stress.py --lmtp --deliver $(RELEASE_BIN) $(LMTP_STRESS_ARGS)
	python3 Tests/Stress/stress.py --watch --deliver $(RELEASE_BIN) $(WATCH_STRESS_ARGS)

clean:
	rm -rf .build .build-bench demo bench-results.json notmuch-deliver_*.deb
