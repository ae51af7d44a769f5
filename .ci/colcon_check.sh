#!/usr/bin/env bash
# Build and test the package with colcon in a temporary workspace and check the installed layout.
# Uses Debian's /usr/bin/colcon (system python); the lint/layering tests need nothing beyond the system packages.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WS=$(mktemp -d /tmp/c4d_ws.XXXXXX)
trap 'rm -rf "$WS"' EXIT
mkdir -p "$WS/src/c4d_ros"
tar -C "$ROOT" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./install --exclude=./log \
  --exclude='./demo_out' --exclude='__pycache__' -cf - . | tar -C "$WS/src/c4d_ros" -xf -
cd "$WS"
# Debian's colcon runs under /usr/bin/python3: make sure it is the interpreter used for the build.
PATH=/usr/bin:$PATH colcon build --packages-select c4d_ros --event-handlers console_direct- 2>&1 | tail -5

PKG="$WS/install/c4d_ros"
fail=0
for p in share/c4d_ros/package.xml share/c4d_ros/launch/c4d.launch.py share/c4d_ros/config/c4d.yaml \
         share/c4d_ros/config/c4d.rviz share/ament_index/resource_index/packages/c4d_ros; do
  if [ -e "$PKG/$p" ]; then echo "ok   $p"; else echo "MISSING $p"; fail=1; fi
done
# every console script declared in setup.py must be installed where `ros2 run` looks (lib/<pkg>/)
for exe in $(python3 - "$ROOT/setup.py" <<'PY'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
for node in ast.walk(tree):
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value and ":" in node.value:
        print(node.value.split(" = ")[0].strip())
PY
); do
  if [ -x "$PKG/lib/c4d_ros/$exe" ]; then echo "ok   lib/c4d_ros/$exe"; else echo "MISSING lib/c4d_ros/$exe"; fail=1; fi
done
[ "$fail" = 0 ] || { echo "installed layout check failed"; exit 1; }

# colcon test: the ament linters and the ROS-free layering/packaging tests (the full suite ran in `make test`).
PATH=/usr/bin:$PATH colcon test --packages-select c4d_ros --event-handlers console_direct- \
  --pytest-args test/test_flake8.py test/test_pep257.py test/test_xmllint.py test/test_layering.py \
  test/test_packaging.py -p no:cacheprovider 2>&1 | tail -15
PATH=/usr/bin:$PATH colcon test-result --all --verbose | tail -20
summary=$(PATH=/usr/bin:$PATH colcon test-result --all | tail -1)
echo "$summary"
tests=$(echo "$summary" | sed -n 's/^Summary: \([0-9]*\) tests.*/\1/p')
errors=$(echo "$summary" | sed -n 's/.* \([0-9]*\) errors.*/\1/p')
failures=$(echo "$summary" | sed -n 's/.* \([0-9]*\) failures.*/\1/p')
if [ -z "$tests" ] || [ "$tests" = 0 ]; then echo "colcon test ran no tests"; exit 1; fi
if [ "${errors:-1}" != 0 ] || [ "${failures:-1}" != 0 ]; then echo "colcon test failed"; exit 1; fi
echo "colcon build/test OK ($tests tests)"
