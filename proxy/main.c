/*
 * main.c: the credgate command line.
 *
 *   credgate [-v] -c FILE            run in the foreground
 *   credgate -t -c FILE              check a configuration
 *   credgate -T -c FILE              print the effective configuration
 *   credgate policy-test -c FILE CASES
 *
 * Exit status: 0 ok, 1 configuration error (or a failed policy test),
 * 2 usage error, 3 run-time failure.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "common/outbound.h"
#include "proxy/conf.h"
#include "proxy/policy_test.h"
#include "proxy/server.h"
#include "vault-client/vault.h"

#define EXIT_CONFIG 1
#define EXIT_USAGE 2
#define EXIT_RUNTIME 3

/*
 * The allocator that serves malloc(): jemalloc only when it counts this
 * thread's allocation, which fails if the C library's malloc is the one
 * bound (a link order gone wrong).
 */
static void
print_allocator(void)
{
#ifdef HAVE_JEMALLOC
	uint64_t before = 0, after = 0;
	size_t len = sizeof(before), vlen = sizeof(const char *);
	const char *version = NULL;
	/* Through a pointer the compiler cannot see into, so that the
	 * allocation is not optimised away. */
	void *(*volatile alloc)(size_t) = malloc;
	char *p;

	if (mallctl("thread.allocated", &before, &len, NULL, 0) == 0 &&
	    (p = alloc(4096)) != NULL) {
		free(p);
		len = sizeof(after);
		if (mallctl("thread.allocated", &after, &len, NULL, 0) == 0 &&
		    after - before >= 4096 &&
		    mallctl("version", &version, &vlen, NULL, 0) == 0 && version != NULL) {
			printf("allocator: jemalloc %s\n", version);
			return;
		}
	}
	printf("allocator: C library malloc (jemalloc is linked but not in use)\n");
#else
	printf("allocator: C library malloc\n");
#endif
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: credgate [-v] -c FILE          run the proxy in the foreground\n"
	    "       credgate -t -c FILE            check FILE and exit\n"
	    "       credgate -T -c FILE            print the effective configuration\n"
	    "       credgate policy-test -c FILE CASES\n"
	    "                                      run policy test cases against FILE\n"
	    "       credgate -V                    print the version and the allocator\n");
}

static void
print_errors(const struct cg_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
}

/*
 * Secure memory comes first: everything parsed afterwards (secrets, and all
 * JSON) lives in it.  Its size is a setting, so the file is read once
 * without touching other files to learn it; the real load follows.
 */
static int
setup_secure_memory(const char *file)
{
	struct cg_config *pre = NULL;
	struct cg_errors errs = { 0 };
	uint64_t size = 4u << 20;
	bool required = false;
	int r;

	if (cg_config_load(file, 0, &pre, &errs) == 0) {
		size = pre->secure_memory_size;
		required = pre->secure_memory == CG_SECMEM_REQUIRED;
		cg_config_free(pre);
	}
	cg_errors_clear(&errs);
	if ((r = secmem_init(size, required)) != 0) {
		fprintf(stderr, "credgate: cannot lock %llu bytes of secure memory (RLIMIT_MEMLOCK); "
		    "raise the limit or set credgate.secure_memory = \"best-effort\"\n",
		    (unsigned long long)size);
		return r;
	}
	if (!secmem_locked())
		cg_warn("msg=secure_memory_unlocked detail=\"mlock failed; secrets may be swapped\"");
	secmem_use_for_json();
	/* libcurl's set-up is process-wide and must precede every thread. */
	if (outbound_global_init() != 0) {
		fprintf(stderr, "credgate: cannot set up libcurl\n");
		return CG_ERR_INTERNAL;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *file = NULL, *cases = NULL;
	struct cg_config *cfg = NULL;
	struct cg_errors errs = { 0 };
	struct cg_process *proc = NULL;
	bool check = false, dump = false, policy_test = false;
	int ch, r, verbose = 0;
	char err[512];

	if (argc > 1 && strcmp(argv[1], "policy-test") == 0) {
		policy_test = true;
		argv++;
		argc--;
	}
	while ((ch = getopt(argc, argv, "c:tTvVh")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'T':
			dump = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'V':
			printf("credgate %s\n", CG_PACKAGE_VERSION);
			print_allocator();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (policy_test) {
		if (argc != 1) {
			usage(stderr);
			return EXIT_USAGE;
		}
		cases = argv[0];
	} else if (argc != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (file == NULL || (check && dump)) {
		usage(stderr);
		return EXIT_USAGE;
	}

	signal(SIGPIPE, SIG_IGN);
	/* A file size limit (ulimit -f, LimitFSIZE=) fails the audit write
	 * that reaches it, which is cut back and audited as a failure,
	 * instead of killing the process. */
	signal(SIGXFSZ, SIG_IGN);
	if (cg_disable_core_dumps() != 0)
		fprintf(stderr, "credgate: warning: cannot disable core dumps\n");
	if (setup_secure_memory(file) != 0)
		return EXIT_RUNTIME;

	/* policy-test needs rules, not keys or secrets. */
	r = cg_config_load(file, policy_test ? 0 : CG_CONFIG_LOAD_FILES |
	    (check ? CG_CONFIG_CHECK : 0), &cfg, &errs);
	print_errors(&errs);
	cg_errors_clear(&errs);
	if (r != 0) {
		if (check)
			fprintf(stderr, "%s: configuration has errors\n", file);
		return policy_test ? EXIT_USAGE : EXIT_CONFIG;
	}
	if (check) {
		fprintf(stderr, "%s: configuration OK\n", file);
		cg_config_free(cfg);
		return 0;
	}
	if (dump) {
		r = cg_config_dump(cfg, stdout);
		cg_config_free(cfg);
		return r == 0 ? 0 : EXIT_RUNTIME;
	}
	if (policy_test) {
		r = policy_test_run(cfg, cases, stdout);
		cg_config_free(cfg);
		return r;
	}

	cg_log_level_set(verbose ? CG_LOG_DEBUG : cfg->log_level);
	if (cg_log_open_file(cfg->log_file) != 0) {
		fprintf(stderr, "%s: credgate.log_file: cannot open %s\n", file, cfg->log_file);
		cg_config_free(cfg);
		return EXIT_RUNTIME;
	}
	/* The secrets file may belong to the user credgate drops to. */
	file_backend_set_owner(cfg->run_uid);
	err[0] = '\0';
	if ((r = server_new(file, cfg, &proc, err, sizeof(err))) != 0) {
		cg_err("msg=start_failed reason=\"%s\"", err[0] ? err : cg_strerror(r));
		fprintf(stderr, "%s: %s\n", file, err[0] ? err : cg_strerror(r));
		return EXIT_RUNTIME;
	}
	r = server_run(proc);
	server_free(proc);
	return r == 0 ? 0 : EXIT_RUNTIME;
}
