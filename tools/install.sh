#!/usr/bin/env bash
# Installs tfprune and its pinned dependencies into a virtual environment (default: .venv).
# Two steps, because tf-agents 0.19 (the last release) declares pins that conflict with TF 2.21 even
# though it works with it, and keras-hub (a test dependency) would pull `tensorflow` over tensorflow-cpu:
# see requirements/nodeps.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -U "pip>=24"
"${PIP[@]}" install -r requirements/base.txt -c requirements/lock.txt
"${PIP[@]}" install --no-deps -r requirements/nodeps.txt -c requirements/lock.txt
"${PIP[@]}" install --no-deps -e .
"$VENV/bin/python" -c "import tfprune, keras, keras_hub, tf_agents, tensorflow_model_optimization, ai_edge_litert; print('tfprune installed in $VENV (keras', keras.__version__ + ')')"
