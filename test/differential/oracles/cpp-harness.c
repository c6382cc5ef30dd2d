/*
 * Differential-test harness around scitokens-cpp (libSciTokens): Debian's 0.7.3, or a
 * release built from source (npm run diff:scitokens-cpp).
 *
 *   cpp-harness ISSUER KID PUBLIC_KEY_PEM_FILE
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
 * off so that crashes leave no files behind.
 */
#define _GNU_SOURCE
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

static void run_case(char *line) {
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
                return;
            }
            fields[count++] = start;
            start = c + 1;
            if (last) break;
        }
    }
    if (count < 4) {
        puts("BAD\texpected TOKEN, AUTHZ, PATH and an audience count");
        return;
    }
    int audience_count = atoi(fields[3]);
    if (audience_count < 0 || audience_count != count - 4) {
        puts("BAD\taudience count does not match the fields");
        return;
    }
    const char *audiences[MAX_AUDIENCES + 1];
    for (int i = 0; i < audience_count; i++) audiences[i] = fields[4 + i];
    audiences[audience_count] = NULL;

    const char *allowed_issuers[] = {issuer, NULL};
    char *err_msg = NULL;
    SciToken token = NULL;
    if (scitoken_deserialize(fields[0], &token, allowed_issuers, &err_msg) != 0) {
        deny("deserialize", err_msg);
        return;
    }
    Enforcer enforcer = enforcer_create(issuer, audiences, &err_msg);
    if (enforcer == NULL) {
        deny("enforcer_create", err_msg);
        return;
    }
    Acl acl = {fields[1], fields[2]};
    if (enforcer_test(enforcer, token, &acl, &err_msg) != 0) {
        deny("enforcer_test", err_msg);
        return;
    }
    puts("ALLOW");
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ISSUER KID PUBLIC_KEY_PEM_FILE\n", argv[0]);
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
            run_case(line);
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
