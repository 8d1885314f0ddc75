/* sudo for the pocketstack test VM image: a small static setuid-root helper (Debian's
 * sudo needs PAM, its plugins and their libraries; this needs nothing). Only root and
 * members of group `sudo` (gid 27, as in Debian) may use it; it takes sudo's usual
 * harmless options, runs the command as root with a clean environment and a secure
 * PATH, and nothing else (no password: the image's user logs in with a key only). */
#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUDO_GID 27
#define SECURE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int allowed(void)
{
    gid_t groups[256];
    int n, i;

    if (getuid() == 0 || getgid() == SUDO_GID)
        return 1;
    n = getgroups(256, groups);
    for (i = 0; i < n; i++)
        if (groups[i] == SUDO_GID)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    static char *env[8];
    char *term = getenv("TERM"), *cmd;
    char user[32];
    gid_t root_group = 0;
    int i = 1, shell = 0, e = 0;
    size_t len = 1;

    if (!allowed()) {
        fprintf(stderr, "sudo: you are not in the sudo group\n");
        return 1;
    }
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "-i") || !strcmp(argv[i], "-s")) {
            shell = 1;
        } else if (!strcmp(argv[i], "-u") && i + 1 < argc &&
                   (!strcmp(argv[i + 1], "root") || !strcmp(argv[i + 1], "0"))) {
            i++;
        } else if (strcmp(argv[i], "-n") && strcmp(argv[i], "-E") &&
                   strcmp(argv[i], "-H") && strcmp(argv[i], "-S")) {
            fprintf(stderr, "sudo: unsupported option %s\n", argv[i]);
            return 1;
        }
    }
    snprintf(user, sizeof user, "SUDO_UID=%u", (unsigned)getuid());
    if (setgroups(1, &root_group) || setgid(0) || setuid(0)) {
        perror("sudo");
        return 1;
    }
    env[e++] = "PATH=" SECURE_PATH;
    env[e++] = "HOME=/root";
    env[e++] = "USER=root";
    env[e++] = "LOGNAME=root";
    env[e++] = "SHELL=/bin/sh";
    env[e++] = user;
    if (term && strlen(term) < 64 && asprintf(&cmd, "TERM=%s", term) > 0)
        env[e++] = cmd;
    env[e] = NULL;
    environ = env;
    if (i >= argc) {
        execl("/bin/sh", "-sh", (char *)NULL);
    } else if (shell) {
        for (int j = i; j < argc; j++)
            len += strlen(argv[j]) + 1;
        cmd = calloc(1, len);
        if (!cmd)
            return 1;
        for (int j = i; j < argc; j++) {
            strcat(cmd, argv[j]);
            if (j + 1 < argc)
                strcat(cmd, " ");
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    } else {
        execvp(argv[i], argv + i);
    }
    perror("sudo");
    return 127;
}
