# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build: bpf/sockbypass.bpf.c -> .output/sockbypass.bpf.o -> .output/sockbypass.skel.h
#        -> loader.c -> ./sockbypass (the BPF object is embedded in the binary)
OUTPUT  := .output
CLANG   ?= clang
BPFTOOL ?= bpftool
CC      ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS  ?= -O2 -g -Wall -Wextra
BIN     := sockbypass
VERSION := 0.2
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/sockbypass
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL ?= install
# installed name of each script: they find ./sockbypass beside them
SCRIPTS := load.sh:sockbypass-load unload.sh:sockbypass-unload \
	trace_bpf_output.sh:sockbypass-trace trace_lo_traffic.sh:sockbypass-trace-lo

# Debian's clang needs the host's include dirs for <asm/types.h> under -target bpf.
CLANG_BPF_SYS_INCLUDES := $(shell $(CLANG) -v -E - </dev/null 2>&1 \
	| sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')
BPF_CFLAGS := -g -O2 -target bpf -Wall -ffile-prefix-map=$(CURDIR)=. -I$(OUTPUT) -Ibpf \
	$(CLANG_BPF_SYS_INCLUDES)
LIBBPF_LIBS := $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf -lelf -lz)

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.PHONY: all clean test test-kernels stress bench lint check-tools help install uninstall deb
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BIN) sockbypass-proxy $(OUTPUT)/libsockbypass-splice.a $(OUTPUT)/libsockbypass-splice.so

help:
	@echo 'make [V=1]      build ./$(BIN) (needs clang, bpftool, libbpf-dev)'
	@echo 'make test       run the test suite (root; see README)'
	@echo 'make test-kernels  the test suite in qemu guests running Debian kernels 6.1, 6.12, 5.10 (root)'
	@echo 'make stress     load, churn, reload cycles and hostile input (root; < 10 min)'
	@echo 'make bench      benchmark tables and plots (root; QUICK=1 for under a minute)'
	@echo 'make lint       shellcheck the scripts'
	@echo 'make install    binary, scripts, unit, sockbypass-proxy, libsockbypass-splice under PREFIX=$(PREFIX) (DESTDIR too)'
	@echo 'make uninstall  remove them'
	@echo 'make sockbypass-metrics  the Prometheus endpoint of deploy/ (libmicrohttpd-dev)'
	@echo 'make deb        a binary package, .output/deb/sockbypass_$(VERSION)_<arch>.deb (debhelper)'
	@echo 'make clean      remove build output'

check-tools:
	@command -v $(CLANG) >/dev/null || { echo "Error: $(CLANG) not found: apt-get install clang" >&2; exit 1; }
	@command -v $(BPFTOOL) >/dev/null || { echo "Error: $(BPFTOOL) not found: apt-get install bpftool" >&2; exit 1; }
	@test -e /usr/include/bpf/libbpf.h || { echo "Error: libbpf headers not found: apt-get install libbpf-dev" >&2; exit 1; }

$(OUTPUT):
	$(Q)mkdir -p $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c Makefile | $(OUTPUT) check-tools
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(notdir $*)_bpf > $@

# loader.c finds the verb; cmd_*.c are the verbs; the rest their shared helpers
LOADER_OBJS := $(addprefix $(OUTPUT)/,loader.o cmd_load.o cmd_unload.o cmd_status.o \
	cmd_features.o cmd_scope.o cmd_portmap.o options.o config.o pins.o paths.o features.o \
	ports.o errmsg.o splice_load.o portmap_load.o)
SKELS := $(OUTPUT)/sockbypass.skel.h $(OUTPUT)/splice.skel.h $(OUTPUT)/portmap.skel.h

# every loader object waits for the skeletons: cmd_load.c and the *_load.c include them
$(LOADER_OBJS): $(OUTPUT)/%.o: %.c $(SKELS) Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -DSB_VERSION='"$(VERSION)"' -I$(OUTPUT) -Ibpf -MMD -MP -c $< -o $@

# libsockbypass-splice (static and shared) and sockbypass-proxy, its forwarder
$(OUTPUT)/lib/splice.o: lib/splice.c lib/sockbypass_splice.h bpf/splice.h Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=default -Ilib -Ibpf -c $< -o $@

$(OUTPUT)/libsockbypass-splice.a: $(OUTPUT)/lib/splice.o
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(OUTPUT)/libsockbypass-splice.so: $(OUTPUT)/lib/splice.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -shared -Wl,-soname,libsockbypass-splice.so.0 $^ $(LIBBPF_LIBS) -o $@

# The DaemonSet's metrics endpoint (needs libmicrohttpd-dev; not part of 'all')
MHD_LIBS := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
sockbypass-metrics: metrics/sockbypass-metrics.c Makefile
	@test -e /usr/include/microhttpd.h || { echo "Error: libmicrohttpd headers not found: apt-get install libmicrohttpd-dev" >&2; exit 1; }
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -D_GNU_SOURCE -DSB_VERSION='"$(VERSION)"' $< $(MHD_LIBS) -o $@

sockbypass-proxy: proxy/sockbypass-proxy.c lib/sockbypass_splice.h $(OUTPUT)/libsockbypass-splice.a Makefile
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -Ilib $< $(OUTPUT)/libsockbypass-splice.a $(LIBBPF_LIBS) -o $@

# the library's smallest complete user (README), built and run by the tests
$(OUTPUT)/sbs-example: lib/example.c lib/sockbypass_splice.h $(OUTPUT)/libsockbypass-splice.a Makefile
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -Ilib $< $(OUTPUT)/libsockbypass-splice.a $(LIBBPF_LIBS) -o $@

# a test proxy that takes its sockets back mid-stream (sbs_pair_detach)
$(OUTPUT)/detach-proxy: test/detach_proxy.c lib/sockbypass_splice.h $(OUTPUT)/libsockbypass-splice.a Makefile
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -Ilib $< $(OUTPUT)/libsockbypass-splice.a $(LIBBPF_LIBS) -o $@

$(OUTPUT)/tcpmany: test/tcpmany.c Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

$(OUTPUT)/stall: test/stall.c Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

$(OUTPUT)/sockbench: bench/sockbench.c bench/cpu_time.c bench/cpu_time.h Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) bench/sockbench.c bench/cpu_time.c -o $@

# The loader with ASan and UBSan, for the error-path tests (SOCKBYPASS_BIN=...).
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LOADER_SRCS := $(patsubst $(OUTPUT)/%.o,%.c,$(LOADER_OBJS))
$(OUTPUT)/asan/sockbypass: $(LOADER_SRCS) $(wildcard *.h) $(SKELS) Makefile | $(OUTPUT)
	$(call msg,CC-ASAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) -g -O1 $(SANITIZE) -DSB_VERSION='"$(VERSION)"' -I$(OUTPUT) -Ibpf $(LOADER_SRCS) $(LIBBPF_LIBS) -o $@

# libFuzzer target for option and path parsing.
$(OUTPUT)/fuzz_options: test/fuzz_options.c options.c ports.c errmsg.c options.h ports.h errmsg.h Makefile | $(OUTPUT)
	$(call msg,CC-FUZZ,$@)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -DSB_VERSION='"$(VERSION)"' -I. -Ibpf test/fuzz_options.c options.c \
		ports.c errmsg.c -o $@

# LD_PRELOAD shim for the tests: a kernel without BPF, as libbpf sees it.
$(OUTPUT)/nobpf.so: test/nobpf.c Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -shared -fPIC $< -o $@ -ldl

# LD_PRELOAD shim for the tests: a late poll() after a map update, to widen a race.
$(OUTPUT)/slowpoll.so: test/slowpoll.c bpf/splice.h Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -I. -shared -fPIC $< -o $@ -ldl

$(BIN): $(LOADER_OBJS)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LIBBPF_LIBS) -o $@

$(OUTPUT)/tcpcheck: test/tcpcheck.c Makefile | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -pthread $< -o $@

# Installs what is missing (Debian), builds, runs every test; TESTS=pattern picks some.
test:
	./load.sh --deps-only --test-deps
	$(MAKE) --no-print-directory all $(OUTPUT)/tcpcheck $(OUTPUT)/nobpf.so $(OUTPUT)/slowpoll.so $(OUTPUT)/sockbench \
		$(OUTPUT)/tcpmany $(OUTPUT)/stall $(OUTPUT)/sbs-example $(OUTPUT)/detach-proxy
	./test/run.sh $(TESTS)

# The kernel matrix (root): the suite inside qemu guests running Debian's 6.1,
# 6.12 and (a subset) 5.10 cloud kernels; KERNELS="pkg ..." picks others.
test-kernels:
	./load.sh --deps-only --test-deps
	$(MAKE) --no-print-directory all $(OUTPUT)/tcpcheck $(OUTPUT)/nobpf.so $(OUTPUT)/slowpoll.so $(OUTPUT)/sockbench \
		$(OUTPUT)/tcpmany $(OUTPUT)/stall $(OUTPUT)/sbs-example $(OUTPUT)/detach-proxy
	./test/kernels/matrix.sh $(KERNELS)

# The stress suite (root, under 10 minutes): test/s_*.sh.
stress:
	./load.sh --deps-only --test-deps --stress-deps
	$(MAKE) --no-print-directory all $(OUTPUT)/tcpcheck $(OUTPUT)/nobpf.so $(OUTPUT)/slowpoll.so $(OUTPUT)/sockbench \
		$(OUTPUT)/tcpmany $(OUTPUT)/stall $(OUTPUT)/sbs-example $(OUTPUT)/detach-proxy $(OUTPUT)/asan/sockbypass \
		$(OUTPUT)/fuzz_options
	SUITE=s ./test/run.sh $(TESTS)

# Benchmarks (root): make bench, or make bench QUICK=1 for a headline run under a minute.
bench:
	./load.sh --deps-only --test-deps --bench-deps
	$(MAKE) --no-print-directory all $(OUTPUT)/tcpcheck $(OUTPUT)/sockbench $(OUTPUT)/stall
	QUICK=$(QUICK) ./bench/run.sh
	QUICK=$(QUICK) ./bench/memory.sh
	QUICK=$(QUICK) ./bench/portmap.sh
	QUICK=$(QUICK) ./bench/proxy.sh
	QUICK=$(QUICK) ./bench/apps.sh

install: $(BIN) sockbypass-proxy $(OUTPUT)/libsockbypass-splice.a $(OUTPUT)/libsockbypass-splice.so
	$(call msg,INSTALL,$(DESTDIR)$(SBINDIR))
	$(Q)$(INSTALL) -m 0755 -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	$(Q)$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/sockbypass
	$(Q)$(foreach s,$(SCRIPTS),$(INSTALL) -m 0755 $(word 1,$(subst :, ,$(s))) \
		$(DESTDIR)$(SBINDIR)/$(word 2,$(subst :, ,$(s))) &&) true
	$(Q)sed 's|@SBINDIR@|$(SBINDIR)|g; s|@DOCDIR@|$(DOCDIR)|g' sockbypass.service.in \
		> $(DESTDIR)$(UNITDIR)/sockbypass.service
	$(Q)chmod 0644 $(DESTDIR)$(UNITDIR)/sockbypass.service
	$(Q)$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(Q)$(INSTALL) -m 0755 -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(COMPLETIONDIR)
	$(Q)$(INSTALL) -m 0644 sockbypass.8 $(DESTDIR)$(MANDIR)/man8/sockbypass.8
	$(Q)$(INSTALL) -m 0644 completion/sockbypass $(DESTDIR)$(COMPLETIONDIR)/sockbypass
	$(call msg,INSTALL,sockbypass-proxy and libsockbypass-splice)
	$(Q)$(INSTALL) -m 0755 -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)
	$(Q)$(INSTALL) -m 0755 sockbypass-proxy $(DESTDIR)$(SBINDIR)/sockbypass-proxy
	$(Q)$(INSTALL) -m 0644 $(OUTPUT)/libsockbypass-splice.a $(DESTDIR)$(LIBDIR)/
	$(Q)$(INSTALL) -m 0755 $(OUTPUT)/libsockbypass-splice.so $(DESTDIR)$(LIBDIR)/libsockbypass-splice.so.0
	$(Q)ln -sf libsockbypass-splice.so.0 $(DESTDIR)$(LIBDIR)/libsockbypass-splice.so
	$(Q)$(INSTALL) -m 0644 lib/sockbypass_splice.h $(DESTDIR)$(INCLUDEDIR)/

uninstall:
	$(call msg,UNINSTALL,$(DESTDIR)$(SBINDIR))
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/sockbypass $(DESTDIR)$(UNITDIR)/sockbypass.service \
		$(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(SBINDIR)/sockbypass-proxy \
		$(DESTDIR)$(MANDIR)/man8/sockbypass.8 $(DESTDIR)$(COMPLETIONDIR)/sockbypass \
		$(DESTDIR)$(LIBDIR)/libsockbypass-splice.a $(DESTDIR)$(LIBDIR)/libsockbypass-splice.so.0 \
		$(DESTDIR)$(LIBDIR)/libsockbypass-splice.so $(DESTDIR)$(INCLUDEDIR)/sockbypass_splice.h \
		$(foreach s,$(SCRIPTS),$(DESTDIR)$(SBINDIR)/$(word 2,$(subst :, ,$(s))))
	$(Q)rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

lint:
	shellcheck -x *.sh test/*.sh test/run-in-cgroup test/kernels/*.sh test/kernels/initramfs-init bench/*.sh .ci/run

# A binary .deb with debhelper, built in a copy of the tree (dpkg-buildpackage
# cleans the tree it runs in): .output/deb/sockbypass_$(VERSION)_<arch>.deb.
DEB_TREE := $(OUTPUT)/deb/sockbypass-$(VERSION)
deb:
	./load.sh --deps-only --deb-deps
	$(call msg,DEB,$(OUTPUT)/deb)
	$(Q)rm -rf $(OUTPUT)/deb && mkdir -p $(DEB_TREE)
	$(Q)tar -c --exclude=./.output --exclude=./.cache --exclude=./.git --exclude=./sockbypass \
		--exclude=./sockbypass-proxy --exclude='./bench/results/20*' . | tar -x -C $(DEB_TREE)
	$(Q)cd $(DEB_TREE) && dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
		{ tail -n 30 ../build.log; echo "Error: dpkg-buildpackage failed (all of it: $(OUTPUT)/deb/build.log)" >&2; exit 1; }
	$(Q)ls $(OUTPUT)/deb/*.deb

clean:
	$(call msg,CLEAN)
	$(Q)rm -rf $(OUTPUT) $(BIN) sockbypass-proxy sockbypass-metrics

-include $(wildcard $(OUTPUT)/*.d)
