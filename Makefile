# Two commands: `make run` (the whole system on the embedded default) and `make test`.
# requirements.txt is what runs the system; requirements-dev.txt adds the test and lint tools.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEV_STAMP := $(VENV)/.requirements-dev-installed
PORT ?= 8501
# The edit-test loop (under 2 minutes here): SQLite only; no browser, worker processes, subprocess
# CLI runs, demo seeding, timing checks or inputs of millions of rows. `make test` runs them all.
FAST_ARGS := -k "not postgresql" -m "not slow and not browser" \
	--ignore=tests/browser --ignore=tests/worker --ignore=tests/test_cli.py --ignore=tests/services/test_demo_data.py \
	--deselect tests/services/test_bulk_send.py::test_the_grouped_review_equals_the_review_one_by_one \
	--deselect tests/services/test_auth.py::test_a_locked_account_an_unknown_user_and_a_wrong_password_take_the_same_time \
	--deselect tests/security/test_hostile_input.py::test_five_million_rows_are_refused_from_the_first_rows_quickly_and_in_little_memory \
	--deselect tests/services/test_bulk_recipients.py::test_fifty_thousand_rows_with_three_percent_malformed \
	--deselect tests/services/test_bulk_recipients.py::test_a_twenty_megabyte_file_within_the_limit_is_refused_for_its_row_count

.PHONY: run test test-fast lint venv venv-dev bench clean
.DELETE_ON_ERROR:

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

venv: $(STAMP)

venv-dev: $(DEV_STAMP)

run: $(STAMP)
	$(PY) -m app migrate
	$(PY) -m app seed-demo
	$(PY) -m streamlit run app/streamlit_app.py --server.port $(PORT)

test: $(DEV_STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-fast: $(DEV_STAMP)
	$(PY) -m pytest -n 2 $(FAST_ARGS) $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) data/*.db data/*.db-*
