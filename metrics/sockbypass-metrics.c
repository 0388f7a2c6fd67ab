// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass-metrics: serves 'sockbypass status --prometheus' over HTTP for
 * Prometheus to scrape (the DaemonSet's metrics endpoint, or any node).
 * libmicrohttpd does the HTTP; each scrape runs the status verb, so the
 * numbers are exactly what 'sockbypass status' says, and this process holds
 * no BPF object: it can come and go without touching the bypass.
 *
 *   GET /metrics  status --prometheus (sockbypass_loaded 0 when not loaded)
 *   GET /healthz  200 while the server runs
 */
#include <argp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <microhttpd.h>

#define EXIT_USAGE 2
#define EXIT_LISTEN 17 /* as sockbypass-proxy: cannot listen on --listen */
#define MAX_BODY (1 << 20)

extern char **environ;

static struct {
	const char *listen;
	const char *pin_dir;
	char sockbypass[PATH_MAX];
	struct sockaddr_storage addr;
} opt = { .listen = "0.0.0.0:9477" };

const char *argp_program_version = "sockbypass-metrics " SB_VERSION;
static const char doc[] =
	"Serve 'sockbypass status --prometheus' over HTTP: GET /metrics, GET /healthz.\n"
	"\v"
	"Exit codes: 0 stopped by SIGTERM/SIGINT, 1 internal error, 2 bad usage,\n"
	"17 cannot listen on --listen.\n";

static const struct argp_option opts[] = {
	{ "listen", 'l', "ADDR:PORT", 0, "where to serve (default 0.0.0.0:9477; [::]:9477 for IPv6)", 0 },
	{ "pin-dir", 'p', "PATH", 0, "the pin dir status reads (default: sockbypass's own)", 0 },
	{ "sockbypass", 's', "PATH", 0, "the sockbypass binary (default: the one beside this program)", 0 },
	{},
};

/* "1.2.3.4:80" or "[::1]:80" into opt.addr */
static int parse_listen(const char *s)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;
	size_t n;

	if (!colon)
		return -1;
	port = strtol(colon + 1, &end, 10);
	n = (size_t)(colon - s);
	if (*end || end == colon + 1 || port < 1 || port > 65535 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&opt.addr;

		host[n - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((unsigned short)port);
		return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)&opt.addr;

	a->sin_family = AF_INET;
	a->sin_port = htons((unsigned short)port);
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'l':
		opt.listen = arg;
		break;
	case 'p':
		if (arg[0] != '/')
			argp_error(state, "--pin-dir: '%s' is not an absolute path", arg);
		opt.pin_dir = arg;
		break;
	case 's':
		snprintf(opt.sockbypass, sizeof(opt.sockbypass), "%s", arg);
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	case ARGP_KEY_END:
		if (parse_listen(opt.listen))
			argp_error(state, "--listen: '%s' is not ADDR:PORT (1.2.3.4:9477, [::]:9477)",
				   opt.listen);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* Run sockbypass status --prometheus; its stdout into a malloc'd body. */
static char *run_status(size_t *len)
{
	char *argv[] = { opt.sockbypass, "status", "--prometheus", NULL, NULL, NULL };
	posix_spawn_file_actions_t fa;
	char *body = malloc(MAX_BODY);
	int fds[2], status;
	pid_t pid;
	ssize_t n;

	if (opt.pin_dir) {
		argv[3] = "--pin-dir";
		argv[4] = (char *)opt.pin_dir;
	}
	*len = 0;
	if (!body || pipe2(fds, O_CLOEXEC)) {
		free(body);
		return NULL;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	if (posix_spawn(&pid, opt.sockbypass, &fa, NULL, argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		close(fds[0]);
		close(fds[1]);
		free(body);
		return NULL;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	while (*len < MAX_BODY && (n = read(fds[0], body + *len, MAX_BODY - *len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		*len += (size_t)n;
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	/* 0 loaded, 12 not loaded: both are answers; anything else is not */
	if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 12)) {
		free(body);
		return NULL;
	}
	return body;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int code, const char *type,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **state)
{
	static const char text[] = "text/plain; charset=utf-8";
	size_t len;
	char *body;

	(void)cls, (void)version, (void)upload, (void)upload_len, (void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, "GET only\n", 9, MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/healthz"))
		return reply(c, MHD_HTTP_OK, text, "ok\n", 3, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, text, "/metrics or /healthz\n", 21,
			     MHD_RESPMEM_PERSISTENT);
	body = run_status(&len);
	if (!body)
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "sockbypass status failed\n", 25,
			     MHD_RESPMEM_PERSISTENT);
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
		     MHD_RESPMEM_MUST_FREE);
}

int main(int argc, char **argv)
{
	static const struct argp argp = { opts, parse_arg, NULL, doc, NULL, NULL, NULL };
	/* no MHD_USE_ERROR_LOG: a failure gets our one line, not libmicrohttpd's too */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;
	struct MHD_Daemon *d;
	sigset_t stop;
	int sig;

	argp_err_exit_status = EXIT_USAGE;
	argp_parse(&argp, argc, argv, 0, NULL, NULL);
	if (!opt.sockbypass[0]) {
		char self[PATH_MAX - sizeof("/sockbypass")];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *slash;

		self[n > 0 ? n : 0] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(opt.sockbypass, sizeof(opt.sockbypass), "%s/sockbypass", self);
	}
	if (access(opt.sockbypass, X_OK)) {
		fprintf(stderr, "Error: %s is not an executable sockbypass; pass --sockbypass PATH\n",
			opt.sockbypass);
		return EXIT_USAGE;
	}
	if (opt.addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* the signals are taken here, not by the server's thread */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &opt.addr,
			     MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "Error: cannot listen on %s (in use, or not an address of this host)\n",
			opt.listen);
		return EXIT_LISTEN;
	}
	printf("sockbypass-metrics: serving %s/metrics\n", opt.listen);
	fflush(stdout);
	sigwait(&stop, &sig);
	MHD_stop_daemon(d);
	return 0;
}
