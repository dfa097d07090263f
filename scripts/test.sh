#!/usr/bin/env bash
# herald's whole test suite (`npm test`): machine setup, build, type check, lint, then the tests.
# Tests that disrupt shared services (restart RabbitMQ, set alarms) are in *-faults.test.ts files and run
# afterwards, one file at a time, so they never pull the rug from under another test.
set -uo pipefail
cd "$(dirname "$0")/.."
out=test-results
mkdir -p "$out"
rm -f "$out"/*.json

bash scripts/test-setup.sh || exit 1
npm run --silent build || exit 1
npm run --silent typecheck || exit 1
npm run --silent lint || exit 1

status=0
npx vitest run --exclude 'test/**/*-faults.test.ts' --reporter=default --reporter=json --outputFile.json="$out/main.json" "$@" || status=1
npx vitest run test/*-faults.test.ts --no-file-parallelism --reporter=default --reporter=json --outputFile.json="$out/faults.json" "$@" || status=1
node scripts/test-summary.mjs "$out"/main.json "$out"/faults.json || status=1
exit $status
