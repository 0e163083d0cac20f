/*
 * procstat.h - CPU time and peak memory of processes, from /proc.
 *
 * The benchmark reports what each process (scheduler, workers, Redis,
 * PostgreSQL with all its backends, the embedded Kafka) spent: CPU seconds
 * between two snapshots and peak resident memory (VmHWM).
 */
#ifndef BATON_BENCH_PROCSTAT_H
#define BATON_BENCH_PROCSTAT_H

#include <stddef.h>
#include <sys/types.h>

struct proc_usage {
    double cpu_seconds;  /* user + system, summed over the group */
    double peak_rss_mib; /* VmHWM, summed over the group */
    int processes;       /* how many were found */
};

/* Usage of `pid` and, when `with_children`, of its direct children (as for
 * PostgreSQL's postmaster and its backends). Zeroes when pid is gone. */
struct proc_usage proc_usage(pid_t pid, int with_children);

/* Reads a pid from a file ("<stack dir>/redis.pid"); 0 when unreadable. */
pid_t proc_read_pidfile(const char *path);

#endif
