/* SPDX-License-Identifier: MIT */
/* Minimal TAP-style harness for moat's C tests. */
#ifndef MOAT_TEST_HARNESS_H
#define MOAT_TEST_HARNESS_H

#include <stdio.h>

static int harness_failures, harness_cases, harness_case_failed;

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			printf("  # %s:%d: check '%s' failed: ", __FILE__, __LINE__, #cond); \
			printf(__VA_ARGS__);                                      \
			printf("\n");                                             \
			harness_case_failed = 1;                                  \
		}                                                                 \
	} while (0)

#define RUN(fn)                                                                   \
	do {                                                                      \
		harness_case_failed = 0;                                          \
		harness_cases++;                                                  \
		fn();                                                             \
		printf("%s %d - %s\n", harness_case_failed ? "not ok" : "ok",    \
		       harness_cases, #fn);                                       \
		harness_failures += harness_case_failed;                          \
	} while (0)

#define HARNESS_EXIT()                                                            \
	(printf("%d passed, %d failed\n", harness_cases - harness_failures,       \
		harness_failures),                                                \
	 harness_failures ? 1 : 0)

#endif
