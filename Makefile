# stamp's entry points. `make demo` and `make test` work on a fresh machine: they
# install what they need (scripts/setup-tools.sh) into .tools/.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# A real terraform, packer or aws already on PATH wins; .tools/bin is the fallback.
export PATH := $(PATH):$(CURDIR)/.tools/bin
# Terraform's CLI configuration is left alone: stamp uses the user's own wherever
# terraform would find one (TF_CLI_CONFIG_FILE naming a file, else ~/.terraformrc and
# ~/.terraform.d/*.tfrc) and writes its own only where there is none; its own takes
# hashicorp/aws from the provider mirror scripts/setup-tools.sh found on this machine.
# (The tests and the demo run with .tools/terraformrc: offline, they need that mirror.)
STAMP_TF_PROVIDER_MIRROR ?= $(shell cat $(CURDIR)/.tools/provider-mirror 2>/dev/null)
export STAMP_TF_PROVIDER_MIRROR
STAMP := $(CURDIR)/target/release/stamp
CUSTOMER ?=
ENV ?=
# In CI there is no terminal to confirm an apply.
APPROVE := $(if $(CI),--auto-approve,)
STAMP_FLAGS ?=

.PHONY: demo test test-unit test-aws lint bench-fleet ci customer plan destroy outputs render list doctor tools tools-checks build bench clean help

# The tool installs (pip, apt) wait on the network and the disk, the build on the CPU:
# side by side, a fresh clone's first demo takes the longer of the two, not their sum.
demo: ## Deploy the demo customer against an emulated AWS, offline
	$(MAKE) --no-print-directory -j2 tools build
	scripts/demo.sh

test: tools-checks ## Unit, end-to-end (real tools + emulator), signal and payload tests
	cargo test --locked --all-targets

# The unit tests alone need neither the tools nor the emulator: a quick check on any
# machine with Rust.
test-unit: ## Unit tests only (cargo test --lib): no tool, no emulator
	cargo test --locked --lib

test-aws: tools ## The real stacks on the real provider against the emulator: deploy, redeploy, destroy (minutes)
	cargo test --locked --test real_stacks -- --ignored --test-threads 2

lint: ## Formatting and clippy, as CI runs them
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

ci: lint test ## What .ci/run runs

# One shape for every target: `stamp SUBCOMMAND [CUSTOMER] [--env ENV] ... $(STAMP_FLAGS)`,
# STAMP_FLAGS last: global options are accepted there too, and so are the
# subcommand's own (STAMP_FLAGS="--parallel=2", "--from vpc", "--json").
# A target that names a customer needs CUSTOMER (for every customer, run stamp itself).
need_customer = @test -n "$(CUSTOMER)" || { echo "usage: make $@ CUSTOMER=<name> [ENV=<env>] [STAMP_FLAGS=...]" >&2; exit 2; }
env_flag = $(if $(ENV),--env $(ENV))

customer: build ## make customer CUSTOMER=acme [ENV=staging] [STAMP_FLAGS="--from vpc"]: deploy one customer
	$(need_customer)
	$(STAMP) deploy $(CUSTOMER) $(env_flag) $(APPROVE) $(STAMP_FLAGS)

plan: build ## make plan CUSTOMER=acme: what a deploy would change
	$(need_customer)
	$(STAMP) plan $(CUSTOMER) $(env_flag) $(STAMP_FLAGS)

destroy: build ## make destroy CUSTOMER=acme: tear a customer down
	$(need_customer)
	$(STAMP) destroy $(CUSTOMER) $(env_flag) $(APPROVE) $(STAMP_FLAGS)

outputs: build ## make outputs CUSTOMER=acme: its stacks' outputs, read from the states
	$(need_customer)
	$(STAMP) outputs $(CUSTOMER) $(env_flag) $(STAMP_FLAGS)

render: build ## make render CUSTOMER=acme: write the generated files, run nothing
	$(need_customer)
	$(STAMP) render $(CUSTOMER) $(env_flag) $(STAMP_FLAGS)

list: build ## make list: the customers, their env, region, revision and last run
	$(STAMP) list $(STAMP_FLAGS)

doctor: build ## make doctor: the tools, their versions, and whether AWS answers
	$(STAMP) doctor $(STAMP_FLAGS)

.PHONY: matrix
matrix: build ## make matrix [SINCE=origin/main]: the customers as a GitHub Actions matrix (those a change since SINCE affects)
	$(STAMP) matrix $(if $(SINCE),--changed-since $(SINCE)) $(STAMP_FLAGS)

tools:
	scripts/setup-tools.sh

tools-checks:
	scripts/setup-tools.sh --checks

build:
	cargo build --release --locked --quiet

bench: tools build ## stamp's overhead over the bare tool commands (figures in docs/benchmarks.md)
	STAMP_BIN=$(STAMP) scripts/bench.sh

bench-fleet: tools build ## 16 customers side by side vs a bash loop and make -j8; 10,000 customer files (figures in docs/benchmarks.md)
	STAMP_BIN=$(STAMP) scripts/bench-fleet.sh

.PHONY: bench-fleet-real
bench-fleet-real: tools build ## N customers of the real stacks (staging, one image) with --parallel 8 vs one alone; COUNTS="1 8 16" PARALLEL=8 (figures in docs/bench-fleet-real.md)
	STAMP_BIN=$(STAMP) scripts/bench-fleet-real.sh

.PHONY: bench-rollout
bench-rollout: tools build ## a rollout of 16 customers (soak 0) vs deploy --all, and the time from a failure to the halt (figures in docs/bench-rollout.md)
	STAMP_BIN=$(STAMP) scripts/bench-rollout.sh

.PHONY: bench-visibility
bench-visibility: tools build ## no-op redeploys vs first deploys; status --all over 100 customers; plan --all vs single plans (figures in docs/benchmarks.md)
	STAMP_BIN=$(STAMP) scripts/bench-visibility.sh

clean:
	rm -rf .stamp target

# Every target with a `## ` comment, in the Makefile's order: the documented ones.
help: ## This list
	@awk -F ':[^#]*## ' '/^[a-z][a-z-]*:[^=]*## / { printf "  %-18s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))
