/*
 * procstat.c - /proc readers for the benchmark (see procstat.h).
 */
#include "procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* utime + stime (seconds) and ppid of one process; 0 on success. */
static int read_stat(pid_t pid, double *cpu, pid_t *ppid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip past the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    char state;
    int parent;
    unsigned long long utime, stime;
    /* NOLINTNEXTLINE(cert-err34-c): the kernel's /proc/PID/stat; a short line fails the count */
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &parent,
               &utime, &stime) != 4)
        return -1;
    *cpu = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
    *ppid = parent;
    return 0;
}

static double read_hwm_mib(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    double kib = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtod(line + 6, NULL);
    fclose(f);
    return kib / 1024.0;
}

struct proc_usage proc_usage(pid_t pid, int with_children) {
    struct proc_usage u = {0, 0, 0};
    double cpu;
    pid_t ppid;
    if (pid <= 0 || read_stat(pid, &cpu, &ppid))
        return u;
    u.cpu_seconds = cpu;
    u.peak_rss_mib = read_hwm_mib(pid);
    u.processes = 1;
    if (!with_children)
        return u;
    DIR *d = opendir("/proc");
    if (!d)
        return u;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* Not a number (".", "self", "sys"): 0, skipped below. */
        pid_t child = (pid_t)atoi(e->d_name); // NOLINT(cert-err34-c): 0 is the error value here
        if (child <= 0 || child == pid)
            continue;
        if (read_stat(child, &cpu, &ppid) == 0 && ppid == pid) {
            u.cpu_seconds += cpu;
            u.peak_rss_mib += read_hwm_mib(child);
            u.processes++;
        }
    }
    closedir(d);
    return u;
}

pid_t proc_read_pidfile(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int pid = 0;
    /* NOLINTNEXTLINE(cert-err34-c): a pid file the bench's children write; bad: 0 */
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}
