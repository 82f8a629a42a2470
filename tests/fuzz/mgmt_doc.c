/* libFuzzer driver: ./build.sh fuzz. The management plane's document writers (section 16):
 * mgmt_emit (compact copy, redaction of secrets into their markers, un-redaction against a
 * stored document) and mgmt_pretty (how config.json is written back). The body and its input
 * format are fuzz_mgmt_doc in targets.h (which #includes ../../bifrost.c), so
 * tests/unit/fuzz_regress.c replays the corpus and regress/mgmt_doc/ too. */
#include "targets.h"

FUZZ_DRIVER(fuzz_mgmt_doc)
