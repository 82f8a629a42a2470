/* libFuzzer driver: ./build.sh fuzz (the body is fuzz_bedrock in targets.h, which #includes ../../bifrost.c). */
#include "targets.h"

FUZZ_DRIVER(fuzz_bedrock)
