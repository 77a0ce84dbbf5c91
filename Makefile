# UdaConnect — top-level build.  See README.md.
#   make            build everything
#   make install    install the extension into the PostgreSQL named by pg_config
#   make run        install missing packages, build, start the local stack, load the seed data
#   make stop       stop the local stack
#   make check      the same set-up, the packages built and installed (install-deb), then every test ("N passed, N failed")
#   make bench      benchmarks against their baselines
#   make deb        Debian packages into build/deb (docs/packages.md)
#   make install-deb  make deb, then apt-get install them (root or sudo)
PG_CONFIG ?= pg_config
export PG_CONFIG
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SUBDIRS := pg_udaconnect gateway scripts test/unit

.PHONY: all install deps run stop check bench clean deb install-deb $(SUBDIRS)

all: $(SUBDIRS)

$(SUBDIRS):
	@if [ -f $@/Makefile ]; then $(MAKE) -C $@; fi

install: all
	$(SUDO) $(MAKE) -C pg_udaconnect install PG_CONFIG=$(PG_CONFIG)

deps:
	@scripts/deps.sh

run: deps
	$(MAKE) install
	scripts/as-user.sh scripts/stack.sh start

stop:
	scripts/as-user.sh scripts/stack.sh stop

# install-deb after install: the suites run on the packaged extension, and
# test/suites/80-packages.sh tests the installed packages
check: deps
	$(MAKE) install
	$(MAKE) install-deb
	scripts/as-user.sh test/run.sh

bench: deps
	$(MAKE) install
	scripts/huge-pages.sh reserve; scripts/as-user.sh test/bench/run.sh; rc=$$?; \
	  scripts/huge-pages.sh release; exit $$rc

deb: deps
	scripts/make-deb.sh

# --reinstall: `make install` may since have overwritten the package's files
install-deb: deb
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall $(CURDIR)/build/deb/*.deb

clean:
	for d in $(SUBDIRS); do [ -f $$d/Makefile ] && $(MAKE) -C $$d clean || true; done
