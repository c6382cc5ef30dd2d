/*
 * Differential-test harness around scitokens-cpp (libSciTokens): Debian's 0.7.3, or a
 * release built from source (npm run diff:scitokens-cpp). The calls it makes have the
 * same signatures in 0.7.3 and 1.4.1, so the one source compiles against both.
 *
 *   cpp-harness ISSUER KID PUBLIC_KEY_PEM_FILE
 *   cpp-harness --one-enforcer ISSUER KID PUBLIC_KEY_PEM_FILE
 *   cpp-harness --library
 *
 * Stores the PEM public key for ISSUER/KID in scitokens-cpp's key cache (which lives
 * under $XDG_CACHE_HOME: the test points it at a temporary folder), prints READY, then
 * answers one case per stdin line:
 *
 *   in:  TOKEN \t AUTHZ \t PATH \t N \t AUD_1 \t ... \t AUD_N
 *   out: ALLOW
 *        DENY \t STAGE \t MESSAGE        (STAGE: deserialize, enforcer_create, enforcer_test)
 *        CRASH \t SIGNAL                  (the library crashed on this case)
 *        BAD \t MESSAGE                   (the line could not be parsed)
 *
 * Each case runs in a forked child, so a crash inside the library (0.7.3 pops an empty
 * vector on paths such as "/../x") costs that case, not the run. The child has an alarm
 * so that undefined behaviour which loops cannot hang the run either, and core dumps are
 * off so that crashes leave no files behind. A fresh child also means a fresh enforcer:
 * no case can see what an earlier one left in the library.
 *
 * --one-enforcer answers the same lines in one process with ONE enforcer, created for the
 * first case's audiences and reused for every later case (which must name the same
 * audiences), as a long-running server such as XRootD keeps its enforcer: it shows what
 * an enforcer carries from one token to the next (1.4.1 decides whether `nbf` is
 * mandatory from the profile of the token it verified before).
 *
 * --library prints the file of the libSciTokens the harness loaded and exits, so that a
 * run can check it asks the build it means to.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <scitokens/scitokens.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_AUDIENCES 16
#define CASE_SECONDS 10

static const char *issuer;

/* Messages go on one line: tabs and line breaks become spaces. */
static void print_clean(const char *text) {
    for (const char *c = text ? text : "(no message)"; *c != '\0'; c++) {
        putchar(*c == '\t' || *c == '\n' || *c == '\r' ? ' ' : *c);
    }
}

static void deny(const char *stage, char *err_msg) {
    fputs("DENY\t", stdout);
    fputs(stage, stdout);
    putchar('\t');
    print_clean(err_msg);
    putchar('\n');
    free(err_msg);
}

/* The fields of one case line; 0 when it could not be parsed (a BAD line was printed). */
struct harness_case {
    const char *token;
    const char *authz;
    const char *path;
    const char *audiences[MAX_AUDIENCES + 1];
    int audience_count;
};

static int parse_case(char *line, struct harness_case *out) {
    char *fields[4 + MAX_AUDIENCES];
    int count = 0;
    /* Split by hand (strtok would merge empty fields, and an empty path is a field). */
    char *start = line;
    for (char *c = line;; c++) {
        if (*c == '\t' || *c == '\0') {
            int last = *c == '\0';
            *c = '\0';
            if (count == 4 + MAX_AUDIENCES) {
                puts("BAD\ttoo many fields");
                return 0;
            }
            fields[count++] = start;
            start = c + 1;
            if (last) break;
        }
    }
    if (count < 4) {
        puts("BAD\texpected TOKEN, AUTHZ, PATH and an audience count");
        return 0;
    }
    int audience_count = atoi(fields[3]);
    if (audience_count < 0 || audience_count != count - 4) {
        puts("BAD\taudience count does not match the fields");
        return 0;
    }
    out->token = fields[0];
    out->authz = fields[1];
    out->path = fields[2];
    for (int i = 0; i < audience_count; i++) out->audiences[i] = fields[4 + i];
    out->audiences[audience_count] = NULL;
    out->audience_count = audience_count;
    return 1;
}

/*
 * Deserializes the case's token and asks `enforcer` (created for the case when NULL).
 * Nothing is destroyed: a forked child exits right after, and a heap that a case has
 * corrupted must not turn its printed answer into a crash.
 */
static void decide(const struct harness_case *c, Enforcer enforcer) {
    const char *allowed_issuers[] = {issuer, NULL};
    char *err_msg = NULL;
    SciToken token = NULL;
    if (scitoken_deserialize(c->token, &token, allowed_issuers, &err_msg) != 0) {
        deny("deserialize", err_msg);
        return;
    }
    if (enforcer == NULL) {
        enforcer = enforcer_create(issuer, (const char **)c->audiences, &err_msg);
        if (enforcer == NULL) {
            deny("enforcer_create", err_msg);
            return;
        }
    }
    Acl acl = {c->authz, c->path};
    if (enforcer_test(enforcer, token, &acl, &err_msg) != 0) {
        deny("enforcer_test", err_msg);
    } else {
        puts("ALLOW");
    }
}

/* --one-enforcer: every case in this process, through the enforcer of the first case. */
static void one_enforcer_loop(void) {
    Enforcer enforcer = NULL;
    char first_audiences[4096] = "";
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    while ((length = getline(&line, &capacity, stdin)) != -1) {
        if (length > 0 && line[length - 1] == '\n') line[--length] = '\0';
        struct harness_case c;
        if (parse_case(line, &c)) {
            char audiences[4096] = "";
            for (int i = 0; i < c.audience_count; i++) {
                strncat(audiences, c.audiences[i], sizeof(audiences) - strlen(audiences) - 2);
                strcat(audiences, "\t");
            }
            char *err_msg = NULL;
            if (enforcer == NULL) {
                enforcer = enforcer_create(issuer, (const char **)c.audiences, &err_msg);
                if (enforcer == NULL) {
                    deny("enforcer_create", err_msg);
                } else {
                    strcpy(first_audiences, audiences);
                }
            }
            if (enforcer != NULL && strcmp(audiences, first_audiences) != 0) {
                puts("BAD\t--one-enforcer: every case must name the first case's audiences");
            } else if (enforcer != NULL) {
                decide(&c, enforcer);
            }
        }
        fflush(stdout);
    }
    free(line);
}

/* --library: the file of the libSciTokens this process loaded. */
static int print_library(void) {
    Dl_info info;
    if (dladdr((void *)enforcer_create, &info) == 0 || info.dli_fname == NULL) {
        fputs("dladdr could not name the library of enforcer_create\n", stderr);
        return 1;
    }
    puts(info.dli_fname);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--library") == 0) return print_library();
    int one_enforcer = argc == 5 && strcmp(argv[1], "--one-enforcer") == 0;
    if (one_enforcer) {
        argv++;
        argc--;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: %s [--one-enforcer] ISSUER KID PUBLIC_KEY_PEM_FILE\n       %s --library\n", argv[0], argv[0]);
        return 2;
    }
    issuer = argv[1];
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    FILE *pem_file = fopen(argv[3], "r");
    if (pem_file == NULL) {
        perror(argv[3]);
        return 2;
    }
    char pem[8192];
    size_t pem_len = fread(pem, 1, sizeof(pem) - 1, pem_file);
    fclose(pem_file);
    pem[pem_len] = '\0';
    char *err_msg = NULL;
    if (scitoken_store_public_ec_key(issuer, argv[2], pem, &err_msg) != 0) {
        fprintf(stderr, "scitoken_store_public_ec_key failed: %s\n", err_msg ? err_msg : "(no message)");
        return 2;
    }
    puts("READY");
    fflush(stdout);
    if (one_enforcer) {
        one_enforcer_loop();
        return 0;
    }

    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    while ((length = getline(&line, &capacity, stdin)) != -1) {
        if (length > 0 && line[length - 1] == '\n') line[--length] = '\0';
        fflush(stdout);
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
        if (child == 0) {
            alarm(CASE_SECONDS);
            struct harness_case c;
            if (parse_case(line, &c)) decide(&c, NULL);
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        if (waitpid(child, &status, 0) < 0) {
            perror("waitpid");
            return 1;
        }
        if (WIFSIGNALED(status)) {
            printf("CRASH\t%d\n", WTERMSIG(status));
        } else if (WEXITSTATUS(status) != 0) {
            printf("CRASH\texit %d\n", WEXITSTATUS(status));
        }
        fflush(stdout);
    }
    free(line);
    return 0;
}
