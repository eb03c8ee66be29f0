# stamp's entry points. `make demo` and `make test` work on a fresh machine: they
# install what they need (scripts/setup-tools.sh) into .tools/.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# A real terraform, packer or aws already on PATH wins; .tools/bin is the fallback.
export PATH := $(PATH):$(CURDIR)/.tools/bin
# Terraform's CLI configuration: the user's own when it exists, else the one
# scripts/setup-tools.sh writes (hashicorp/aws from a provider mirror found on the machine).
export TF_CLI_CONFIG_FILE := $(if $(wildcard $(TF_CLI_CONFIG_FILE)),$(TF_CLI_CONFIG_FILE),$(CURDIR)/.tools/terraformrc)
STAMP := $(CURDIR)/target/release/stamp
CUSTOMER ?=
ENV ?=
# In CI there is no terminal to confirm an apply.
APPROVE := $(if $(CI),--auto-approve,)
STAMP_FLAGS ?=

.PHONY: demo test test-aws lint bench-fleet ci customer plan destroy outputs render list doctor tools tools-checks build bench clean

demo: tools build ## Deploy the demo customer against an emulated AWS, offline
	scripts/demo.sh

test: tools-checks ## Unit, end-to-end (real tools + emulator), signal and payload tests
	cargo test --locked --all-targets

test-aws: tools ## The real stacks on the real provider against the emulator: deploy, redeploy, destroy (minutes)
	cargo test --locked --test real_stacks -- --ignored --test-threads 2

lint: ## Formatting and clippy, as CI runs them
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

ci: lint test ## What .ci/run runs

# STAMP_FLAGS after the subcommand: global options are accepted there too, and so
# are deploy's own (STAMP_FLAGS="--from vpc", "--rebuild-ami", "--no-smoke").
customer: build ## make customer CUSTOMER=acme [ENV=staging] [STAMP_FLAGS="--from vpc"]: deploy one customer
	@test -n "$(CUSTOMER)" || { echo "usage: make customer CUSTOMER=<name> [ENV=<env>]" >&2; exit 2; }
	$(STAMP) deploy $(CUSTOMER) $(if $(ENV),--env $(ENV)) $(APPROVE) $(STAMP_FLAGS)

plan: build ## make plan CUSTOMER=acme: what a deploy would change
	@test -n "$(CUSTOMER)" || { echo "usage: make plan CUSTOMER=<name>" >&2; exit 2; }
	$(STAMP) $(STAMP_FLAGS) plan $(CUSTOMER) $(if $(ENV),--env $(ENV))

destroy: build ## make destroy CUSTOMER=acme: tear a customer down
	@test -n "$(CUSTOMER)" || { echo "usage: make destroy CUSTOMER=<name>" >&2; exit 2; }
	$(STAMP) $(STAMP_FLAGS) destroy $(CUSTOMER) $(if $(ENV),--env $(ENV)) $(APPROVE)

outputs: build ## make outputs CUSTOMER=acme
	$(STAMP) $(STAMP_FLAGS) outputs $(CUSTOMER)

render: build ## make render CUSTOMER=acme: write the generated files, run nothing
	$(STAMP) $(STAMP_FLAGS) render $(CUSTOMER)

list: build
	$(STAMP) $(STAMP_FLAGS) list

doctor: build
	$(STAMP) $(STAMP_FLAGS) doctor

.PHONY: matrix
matrix: build ## make matrix [SINCE=origin/main]: the customers as a GitHub Actions matrix (those a change since SINCE affects)
	$(STAMP) $(STAMP_FLAGS) matrix $(if $(SINCE),--changed-since $(SINCE))

tools:
	scripts/setup-tools.sh

tools-checks:
	scripts/setup-tools.sh --checks

build:
	cargo build --release --locked --quiet

bench: tools build ## stamp's overhead over the bare tool commands (figures in README.md)
	STAMP_BIN=$(STAMP) scripts/bench.sh

bench-fleet: tools build ## 16 customers side by side vs a bash loop and make -j8; 10,000 customer files (figures in README.md)
	STAMP_BIN=$(STAMP) scripts/bench-fleet.sh

.PHONY: bench-visibility
bench-visibility: tools build ## no-op redeploys vs first deploys; status --all over 100 customers; plan --all vs single plans (figures in README.md)
	STAMP_BIN=$(STAMP) scripts/bench-visibility.sh

clean:
	rm -rf .stamp target
