# Builds ipsecctl, ipsecd, iked and ikectl and installs them with their manual pages and
# systemd units:
#
#	make && sudo make install
#
# PREFIX (default /usr/local) and DESTDIR (for staging, as packagers use
# it) say where; SBINDIR, MANDIR and UNITDIR can be set one by one.

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
CARGO ?= cargo

BINARIES := target/release/ipsecctl target/release/ipsecd target/release/iked \
	target/release/ikectl
UNITS := ipsecd.service iked.service ipsec.service

all:
	$(CARGO) build --release --locked --bin ipsecctl --bin ipsecd --bin iked --bin ikectl

install:
	@for b in $(BINARIES); do \
		test -x $$b || { echo "$$b is not built: run make first" >&2; exit 1; }; \
	done
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man4 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BINARIES) $(DESTDIR)$(SBINDIR)
	install -m 0644 man/enc.4 $(DESTDIR)$(MANDIR)/man4
	install -m 0644 man/ipsec.conf.5 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 man/ipsecctl.8 man/ipsecd.8 man/iked.8 man/ikectl.8 \
		$(DESTDIR)$(MANDIR)/man8
	for u in $(UNITS); do \
		sed 's|@SBINDIR@|$(SBINDIR)|g' contrib/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/ipsecctl $(DESTDIR)$(SBINDIR)/ipsecd $(DESTDIR)$(SBINDIR)/iked \
		$(DESTDIR)$(SBINDIR)/ikectl
	rm -f $(DESTDIR)$(MANDIR)/man4/enc.4 $(DESTDIR)$(MANDIR)/man5/ipsec.conf.5
	rm -f $(DESTDIR)$(MANDIR)/man8/ipsecctl.8 $(DESTDIR)$(MANDIR)/man8/ipsecd.8 \
		$(DESTDIR)$(MANDIR)/man8/iked.8 $(DESTDIR)$(MANDIR)/man8/ikectl.8
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done

.PHONY: all install uninstall
