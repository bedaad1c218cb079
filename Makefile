# The two commands of the README:
#   make book   create the environment if missing, execute every chapter at the
#               quick profile (papermill) and build the book (jupyter-book)
#   make test   unit tests (and the numeric ones again on the generic CPU code
#               path), nbval on the executed notebooks, the strict book build and
#               the rendered-page check in headless Chromium
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
STAMP := $(VENV)/.installed-stamp

.PHONY: book test env unit unit-portable notebooks nbval build-strict rendered book-checks built-and-rendered benchmarks clean

book: env
	$(PY) -m gsutils.book --profile $(PROFILE) --jobs 2

test: env unit unit-portable notebooks book-checks

env: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements-lock.txt -e ".[book,test]"
	$(PY) -m gsutils.offline_assets >/dev/null
	touch $(STAMP)

# two pytest workers (pytest-xdist): the tests are independent, each in its own temporary folder.
# One thread per process: two workers of two threads each on two cores made OpenMP's threads wait
# for each other (measured: nbval's classifier cells ran 7-10x slower beside another process)
unit:
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -n 2 tests --ignore=tests/test_rendered_book.py --durations=15

# the numeric tests again on the generic CPU code path and 2 threads: what another x86-64 CPU
# (Intel or AMD, with or without AVX-512/AMX) may compute differently
unit-portable:
	OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 GSUTILS_RERUN_THREADS=2 \
	  $(PY) -m pytest -q -p no:cacheprovider -n 2 -m numeric tests --ignore=tests/test_rendered_book.py --durations=15

notebooks:
	$(PY) -m gsutils.book --profile quick --no-build --jobs 2

# one thread: nbval runs beside the strict build and the rendered check (and the chapters were
# executed on one thread each)
nbval:
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-cell-timeout=900 \
	  book/grid_saliency book/normgrad book/reproduction_report.ipynb

build-strict:
	$(PY) -m gsutils.book --build-only --strict

rendered:
	$(PY) -m pytest -q -p no:cacheprovider tests/test_rendered_book.py

# nbval re-runs the executed notebooks and compares their outputs (it writes nothing the build
# reads) while the book is built strictly and its pages are checked: the two at once
book-checks:
	$(MAKE) --no-print-directory -j2 --output-sync=target nbval built-and-rendered

built-and-rendered:
	$(MAKE) --no-print-directory build-strict
	$(MAKE) --no-print-directory rendered

benchmarks: env
	for f in benchmarks/*.py; do OMP_NUM_THREADS=2 $(PY) $$f; done

clean:
	rm -rf book/_build book/**/*.ipynb book/*.ipynb
