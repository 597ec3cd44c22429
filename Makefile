# channels-chat-workshop
#   make step5               set up, then serve the finished chat at http://127.0.0.1:8000/chat/
#   make test                set up, then run the shared tests over every stage
# `make help` lists every target.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
STAGES := 1 2 3 4 5 6 7 8 9

PORT ?= 8000
WORKERS ?= 2
REDIS_URL ?= redis://127.0.0.1:6379/0
STEP ?=
FROM ?=
TO ?=
DIR ?=
STRICT ?=
QUICK ?=
UNSANDBOXED ?=
REPORT_DIR ?=
JOBS ?=
FRESH ?=
SCREENSHOTS ?=
REPOSITORY ?=
UNTIL ?=
# Workers for the whole suite (pytest-xdist); each stage's tests stay on one worker. Four
# beat three on two cores: most of a test is waiting on sockets, browsers and servers.
TEST_WORKERS ?= 4

# One readable line, not a traceback, for a wrong STEP/FROM/TO.
stage_ok = $(if $(filter $(1),$(STAGES)),,$(error $(2)=$(1) is not a stage: use one of $(STAGES)))

.PHONY: help setup step1 step2 step3 step4 step5 step6 step7 step8 step9 step6-test step7-test step8-test step9-test diff test grade grade-class check autograder classroom redis bench bench-grading docs lint format clean

help:
	@echo "make step1 .. step8          serve that stage at http://127.0.0.1:\$$PORT (PORT=$(PORT))"
	@echo "make step9 [WORKERS=2]       stage 9 as deployed: nginx at https://127.0.0.1:\$$PORT, WORKERS daphne workers"
	@echo "make step6-test .. step9-test run that stage's own tests (manage.py test chat) in the sandbox"
	@echo "make test [STEP=N]           run the shared tests over every stage (or one)"
	@echo "  [SCREENSHOTS=1]             ... and refresh the docs' screenshots from its browser tests"
	@echo "make diff [FROM=N] TO=M      show a lesson's change between two stages"
	@echo "make grade STEP=N DIR=path   grade a student's project as stage N (STRICT=1: robustness counts)"
	@echo "                             in the sandbox (UNSANDBOXED=1 where bwrap cannot run)"
	@echo "make grade-class STEP=N DIR=submissions [JOBS=k] [FRESH=1]"
	@echo "                             grade every sub-folder or .zip of DIR (class.csv, index.html)"
	@echo "make check DIR=path          how far a student's project gets, stage by stage"
	@echo "                             (UNTIL=N: exit 1 unless stage N is reached)"
	@echo "make redis                   a private Redis for your own project; prints REDIS_URL"
	@echo "make autograder STEP=N       dist/autograder-stepN.zip for Gradescope"
	@echo "make classroom STEP=N        the GitHub Classroom workflow (REPOSITORY=owner/name)"
	@echo "make bench [QUICK=1]         measure sync vs async consumers and channel layers"
	@echo "make bench-grading [QUICK=1] how long grading takes, now and before the sandbox"
	@echo "make docs                    refresh the code and diffs quoted in docs/"
	@echo "make lint | format | setup | clean"

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml tools/pins.py
	@PYTHON=$(PYTHON) tools/require.sh python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PYTHON) tools/pins.py > $(VENV)/requirements.txt
	@echo "Installing the pinned packages into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r $(VENV)/requirements.txt \
		2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
	@touch $@

step1 step2 step3 step4 step5 step6 step7 step8: setup
	@$(PY) -m tools.serve $(@:step%=%) --port "$(PORT)" --redis-url "$(REDIS_URL)"

step9: setup
	@tools/require.sh nginx
	@$(PY) -m tools.serve 9 --port "$(PORT)" --redis-url "$(REDIS_URL)" --workers "$(WORKERS)"

# A stage's own tests (Part 4, and what stages 7-9 add), run as the grader runs a student's:
# in the sandbox, on a virtual display, with a private Redis.
step6-test step7-test step8-test step9-test: setup
	@tools/require.sh redis browser display nginx $(SANDBOX_NEED)
	@$(PY) -m tools.grading.student_tests --project $(wildcard $(@:-test=)_*) \
		$(if $(UNSANDBOXED),--unsandboxed)

# Checked before `setup`, so a typo costs no install.
.PHONY: diff-args test-args grade-args
diff-args:
	$(call stage_ok,$(TO),TO)
	$(if $(FROM),$(call stage_ok,$(FROM),FROM))
test-args:
	$(if $(STEP),$(call stage_ok,$(STEP),STEP))
grade-args:
	$(call stage_ok,$(STEP),STEP)

diff: diff-args setup
	@$(PY) -m tools.diff $(TO) $(if $(FROM),--from $(FROM))

test: test-args setup
	@tools/require.sh redis browser display nginx test-sandbox
	@SCREENSHOTS=$(SCREENSHOTS) $(PY) -m pytest shared_tests $(if $(STEP),--stage $(STEP),-n $(TEST_WORKERS))

# Grading runs students' code: in the sandbox, unless UNSANDBOXED=1 where bwrap cannot run.
GRADE_OPTIONS = $(if $(STRICT),--strict) $(if $(UNSANDBOXED),--unsandboxed) \
	$(if $(REPORT_DIR),--report-dir "$(REPORT_DIR)")
SANDBOX_NEED = $(if $(UNSANDBOXED),,sandbox)

grade: grade-args setup
	@tools/require.sh redis browser display nginx $(SANDBOX_NEED)
	@$(PY) -m tools.grading.grade --stage "$(STEP)" --project "$(DIR)" $(GRADE_OPTIONS)

grade-class: grade-args setup
	@tools/require.sh redis browser display nginx $(SANDBOX_NEED)
	@$(PY) -m tools.grading.class_grading --stage "$(STEP)" --submissions "$(DIR)" \
		$(if $(JOBS),--jobs "$(JOBS)") $(if $(FRESH),--fresh) $(if $(STRICT),--strict) \
		$(if $(UNSANDBOXED),--unsandboxed) $(if $(REPORT_DIR),--report-dir "$(REPORT_DIR)")

check: setup
	@tools/require.sh redis browser display nginx $(SANDBOX_NEED)
	@$(PY) -m tools.grading.grade --check --project "$(DIR)" $(GRADE_OPTIONS) \
		$(if $(UNTIL),--until "$(UNTIL)")

autograder: grade-args setup
	@$(PY) -m tools.grading.autograder build --stage "$(STEP)"

classroom: grade-args setup
	@$(PY) -m tools.grading.classroom workflow --stage "$(STEP)" \
		$(if $(REPOSITORY),--repository "$(REPOSITORY)") $(if $(STRICT),--strict)

bench: setup
	@tools/require.sh redis nginx
	@$(PY) -m tools.bench $(if $(QUICK),--quick)

# For a student's own project at stages 4-5: Redis in the foreground until Ctrl-C.
redis: setup
	@tools/require.sh redis
	@$(PY) -m tools.redis_server

bench-grading: setup
	@tools/require.sh redis browser sandbox
	@$(PY) -m tools.bench.grading $(if $(QUICK),--quick)

docs: setup
	@$(PY) -m tools.docs

lint: setup
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

format: setup
	@$(PY) -m ruff format .
	@$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) grade-report dist .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} + ; find . -name db.sqlite3 -delete
