/*
 * cmd_broker.c - `drainguard broker`: a Kafka-protocol broker for
 * development and tests, built on librdkafka's mock cluster (the only file
 * that includes rdkafka_mock.h). It prints its bootstrap address as the
 * first line of stdout and runs until SIGINT or SIGTERM.
 *
 * librdkafka 2.0.2's mock brokers listen on ephemeral loopback ports that
 * cannot be chosen. With --port N, a small forwarder listens on
 * 127.0.0.1:N and relays bootstrap connections to the mock broker; the
 * broker's metadata then points clients at its own port, also on loopback.
 */
#include "cmd.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const char dg_usage_broker[] =
    "usage: drainguard broker [--port N] [--partitions N] [--topics T[,T...]] [--control]\n"
    "\n"
    "Run a Kafka-protocol broker for development and tests: librdkafka's mock\n"
    "cluster, one broker on 127.0.0.1. Prints its bootstrap address\n"
    "(127.0.0.1:PORT) as the first line of stdout, then runs until SIGINT or\n"
    "SIGTERM.\n"
    "\n"
    "  --port N        bootstrap port (default: a free port chosen by the system)\n"
    "  --partitions N  partitions per topic (default 1)\n"
    "  --topics LIST   topics to create, besides withdrawal-events,\n"
    "                  withdrawal-decisions and withdrawal-events-dlq\n"
    "  --control       read fault-injection commands on stdin, one a line (tests):\n"
    "                    leader TOPIC PARTITION|* BROKER|none\n"
    "                  makes the partition(s) leaderless (none) or led by broker 1\n"
    "                  again; each command is answered with \"ok\" or an error on stdout\n"
    "\n"
    "Limits: everything is in memory and lost on exit; each partition keeps\n"
    "about 5 MiB of messages (older ones are dropped); no TLS, no SASL, no ACLs;\n"
    "one broker, replication factor 1. It speaks the Kafka protocol well enough\n"
    "for consumer groups, idempotent producers and committed offsets, which is\n"
    "what drainguard's tests and demo need. After a group's last member leaves, a\n"
    "new member is let in only when the old session has timed out: give test\n"
    "consumers a short kafka.consumer.session.timeout.ms (e.g. 6000). With --port,\n"
    "clients bootstrap on that port and then talk to the broker's own loopback\n"
    "port. Production uses a real Kafka cluster.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* --control: commands on stdin until EOF. */
struct control {
    rd_kafka_mock_cluster_t *mc;
    int partitions;
};

static void *control_main(void *arg)
{
    struct control *c = arg;
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        char topic[256], part[16], leader[16];
        if (sscanf(line, "leader %255s %15s %15s", topic, part, leader) != 3) {
            printf("error: expected 'leader TOPIC PARTITION|* BROKER|none', got: %s", line);
            fflush(stdout);
            continue;
        }
        int id = !strcmp(leader, "none") ? -1 : atoi(leader);
        int lo = 0, hi = c->partitions - 1, bad = 0;
        if (strcmp(part, "*"))
            lo = hi = atoi(part);
        for (int p = lo; p <= hi; p++)
            bad |= rd_kafka_mock_partition_set_leader(c->mc, topic, p, id) != RD_KAFKA_RESP_ERR_NO_ERROR;
        printf(bad ? "error: cannot set the leader of %s/%s\n" : "ok leader %s/%s %s\n", topic, part,
               leader);
        fflush(stdout);
    }
    return NULL;
}

struct relay {
    int client;
    int port;   /* the mock broker's */
};

/* Copy bytes both ways until either side closes. */
static void *relay_main(void *arg)
{
    struct relay *r = arg;
    struct sockaddr_in sa = {0};
    char buf[65536];
    int up = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)r->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (up < 0 || connect(up, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    for (;;) {
        struct pollfd p[2] = {{r->client, POLLIN, 0}, {up, POLLIN, 0}};
        if (poll(p, 2, 1000) < 0 && errno != EINTR)
            break;
        if (stop)
            break;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n <= 0)
                goto out;
            int to = i == 0 ? up : r->client;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(to, buf + off, (size_t)(n - off));
                if (w <= 0)
                    goto out;
                off += w;
            }
        }
    }
out:
    if (up >= 0)
        close(up);
    close(r->client);
    free(r);
    return NULL;
}

struct forwarder {
    int listen_fd;
    int port;
};

static void *forward_main(void *arg)
{
    struct forwarder *f = arg;
    while (!stop) {
        struct pollfd p = {f->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept(f->listen_fd, NULL, NULL);
        if (c < 0)
            continue;
        struct relay *r = dg_xmalloc(sizeof(*r));
        r->client = c;
        r->port = f->port;
        pthread_t t;
        if (pthread_create(&t, NULL, relay_main, r) != 0) {
            close(c);
            free(r);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static int listen_on(int port)
{
    struct sockaddr_in sa = {0};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int parse_int(const char *opt, const char *v, int lo, int hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        dg_cmd_error("broker", "%s: expected a number from %d to %d, got '%s'", opt, lo, hi, v);
        exit(2);
    }
    return (int)n;
}

int dg_cmd_broker(int argc, char **argv)
{
    int port = 0, partitions = 1, rc = 1, control = 0;
    const char *topics = NULL;
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    struct forwarder fw = {-1, 0};
    pthread_t fwt;
    int have_fw = 0;

    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = dg_opt(argc, argv, &i, "--port")))
            port = parse_int("--port", v, 1, 65535);
        else if ((v = dg_opt(argc, argv, &i, "--partitions")))
            partitions = parse_int("--partitions", v, 1, 256);
        else if ((v = dg_opt(argc, argv, &i, "--topics")))
            topics = v;
        else if (!strcmp(argv[i], "--control"))
            control = 1;
        else {
            dg_cmd_error("broker", "unknown option '%s' (see drainguard broker --help)", argv[i]);
            return 2;
        }
    }

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        dg_cmd_error("broker", "cannot start librdkafka: %s", errstr);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, 1);
    if (!mc) {
        dg_cmd_error("broker", "cannot start the mock cluster");
        goto out_rk;
    }
    {
        const char *defaults[] = {"withdrawal-events", "withdrawal-decisions",
                                  "withdrawal-events-dlq"};
        for (size_t i = 0; i < DG_ARRAY_LEN(defaults); i++)
            rd_kafka_mock_topic_create(mc, defaults[i], partitions, 1);
        if (topics) {
            char *copy = dg_xstrdup(topics), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (*t && rd_kafka_mock_topic_create(mc, t, partitions, 1)) {
                    dg_cmd_error("broker", "cannot create topic '%s'", t);
                    free(copy);
                    goto out_mc;
                }
            free(copy);
        }
    }
    const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
    if (port) {
        const char *colon = strrchr(boot, ':');
        fw.port = colon ? atoi(colon + 1) : 0;
        fw.listen_fd = listen_on(port);
        if (fw.listen_fd < 0) {
            dg_cmd_error("broker", "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
            goto out_mc;
        }
        if (pthread_create(&fwt, NULL, forward_main, &fw) != 0) {
            dg_cmd_error("broker", "cannot start the forwarder");
            close(fw.listen_fd);
            goto out_mc;
        }
        have_fw = 1;
        printf("127.0.0.1:%d\n", port);
    } else {
        printf("%s\n", boot);
    }
    fflush(stdout);
    fprintf(stderr, "drainguard broker: listening on %s (%d partition%s per topic); SIGINT or SIGTERM stops it\n",
            boot, partitions, partitions == 1 ? "" : "s");

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct control ctl = {mc, partitions};
    pthread_t ct;
    if (control && pthread_create(&ct, NULL, control_main, &ctl) == 0)
        pthread_detach(ct); /* blocked on stdin: it ends with the process */
    while (!stop)
        pause();
    rc = 0;
    fprintf(stderr, "drainguard broker: stopping\n");
    if (have_fw) {
        pthread_join(fwt, NULL);
        close(fw.listen_fd);
    }
out_mc:
    rd_kafka_mock_cluster_destroy(mc);
out_rk:
    rd_kafka_destroy(rk);
    return rc;
}
