/* libFuzzer driver: ./build.sh fuzz. http_query_get (section 5), the query-string reader behind
 * /api/logs and /api/logs/stats. The body and its input format are fuzz_http_query in targets.h
 * (which #includes ../../bifrost.c), so tests/unit/fuzz_regress.c replays the corpus too. */
#include "targets.h"

FUZZ_DRIVER(fuzz_http_query)
