# Shortcuts for the asv suite (docs/benchmarks.md). Run from the repository root with the project's venv active
# (or ASV=.venv/bin/asv).
ASV ?= asv
RANGE ?= HEAD~10..HEAD

.PHONY: bench-smoke bench-record bench-history bench-publish bench-compare bench-micro

bench-smoke:      ## every benchmark once, in this environment (what CI runs)
	$(ASV) machine --yes && $(ASV) run --python=same --quick --show-stderr

bench-record:     ## full measurements of the checked-out commit, saved under benchmarks/asv-results
	$(ASV) machine --yes && $(ASV) run -E existing --set-commit-hash $$(git rev-parse HEAD)

bench-history:    ## a commit range in fresh virtualenvs (dedicated machine): make bench-history RANGE=v0.1..main
	$(ASV) run --skip-existing-commits $(RANGE)

bench-publish:    ## static HTML of all saved results into benchmarks/asv-html (open index.html)
	$(ASV) publish && echo "open benchmarks/asv-html/index.html (or: asv preview)"

bench-compare:    ## make bench-compare A=<commit> B=<commit>
	$(ASV) compare $(A) $(B)

bench-micro:      ## pytest-benchmark micro-benchmarks of hot functions (skipped in the normal test run)
	python -m pytest tests/bench --benchmark-only
