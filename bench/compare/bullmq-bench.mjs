// bullmq-bench.mjs - the BullMQ side of compare.sh: the same burst of
// no-op tasks through BullMQ, in one Node.js process, against a Redis that
// compare.sh started for it alone.
//
//   node bullmq-bench.mjs --redis-port PORT --redis-pid PID --tasks N
//        [--concurrency 100] [--chunk 1000] [--priorities 10]
//        [--payload-bytes 0] [--clk-tck 100] [--json FILE]
//
// What it does, as baton-bench does for baton:
//   1. one Queue and one Worker (concurrency 100) in this process; the
//      processor does nothing;
//   2. warm-up: one job end to end, so connections are open and the worker
//      is blocked waiting before the clock starts;
//   3. main phase: N jobs added with addBulk in chunks of --chunk (1,000),
//      each awaited before the next, priorities 1..--priorities cycled;
//      the clock runs from the first add to the last 'completed' event;
//   4. checks every job completed exactly once and none failed;
//   5. reports add rate, end-to-end rate, add->start and add->finish
//      percentiles (job.timestamp, processedOn, finishedOn: this process's
//      clock), CPU seconds and peak RSS of this process and of its Redis,
//      CPU microseconds per task; JSON on stdout, and in --json FILE.
// BullMQ's own defaults otherwise: completed jobs stay in Redis
// (removeOnComplete unset), as baton keeps finished tasks for its
// retention period.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Queue, Worker } from 'bullmq';

const require = createRequire(import.meta.url);

function parseArgs(argv) {
  const opts = {
    'redis-port': 0,
    'redis-pid': 0,
    tasks: 20000,
    concurrency: 100,
    chunk: 1000,
    priorities: 10,
    'payload-bytes': 0,
    'clk-tck': 100,
    json: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !(name in opts) || i + 1 >= argv.length) {
      throw new Error(`bad argument '${argv[i]}' (see the head of this file)`);
    }
    const value = argv[++i];
    if (typeof opts[name] === 'number') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: not a count: '${value}'`);
      opts[name] = n;
    } else {
      opts[name] = value;
    }
  }
  if (!opts['redis-port']) throw new Error('--redis-port is required');
  if (opts.tasks < 1 || opts.concurrency < 1 || opts.chunk < 1 || opts.priorities < 1) {
    throw new Error('--tasks, --concurrency, --chunk and --priorities must be at least 1');
  }
  return opts;
}

// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
function procUsage(pid, clkTck) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: utime and
    // stime are fields 14 and 15, i.e. 12 and 13 after "pid (comm) ".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(fields[11]) + Number(fields[12])) / clkTck;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    return { cpu, rssMiB: hwm ? Number(hwm[1]) / 1024 : 0 };
  } catch {
    return { cpu: 0, rssMiB: 0 };
  }
}

// Nearest-rank percentiles, as baton-bench computes them.
function latency(values) {
  values.sort((a, b) => a - b);
  const at = (p) => (values.length ? values[Math.max(Math.ceil((p / 100) * values.length) - 1, 0)] : 0);
  return {
    p50_ms: at(50),
    p90_ms: at(90),
    p99_ms: at(99),
    p99_9_ms: at(99.9),
    max_ms: values.length ? values[values.length - 1] : 0,
    count: values.length,
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const n = opts.tasks;
  const connection = { host: '127.0.0.1', port: opts['redis-port'], maxRetriesPerRequest: null };
  const name = 'bench';
  const queue = new Queue(name, { connection });
  const payload = opts['payload-bytes'] > 0 ? 'x'.repeat(opts['payload-bytes']) : null;

  let completed = 0;
  let failed = 0;
  let duplicates = 0;
  let tDone = 0;
  let onAllDone = () => {};
  let onWarm = () => {};
  const seen = new Uint8Array(n);
  const toStart = [];
  const toFinish = [];
  const worker = new Worker(name, async () => {}, { connection, concurrency: opts.concurrency });
  worker.on('completed', (job) => {
    if (job.name === 'warmup') {
      onWarm();
      return;
    }
    const k = job.data.k;
    if (seen[k]++) {
      duplicates++;
      return;
    }
    completed++;
    toStart.push(job.processedOn - job.timestamp);
    toFinish.push(job.finishedOn - job.timestamp);
    if (completed === n) {
      tDone = Date.now();
      onAllDone();
    }
  });
  worker.on('failed', (job, err) => {
    failed++;
    if (failed <= 5) console.error(`bullmq-bench: job ${job && job.id} failed: ${err}`);
  });
  worker.on('error', (err) => console.error(`bullmq-bench: worker error: ${err}`));
  await queue.waitUntilReady();
  await worker.waitUntilReady();

  // Warm-up: one job end to end.
  await new Promise((resolve) => {
    onWarm = resolve;
    queue.add('warmup', {});
  });

  const allDone = new Promise((resolve) => {
    onAllDone = resolve;
  });
  const cpu0 = process.cpuUsage();
  const redis0 = procUsage(opts['redis-pid'], opts['clk-tck']);
  const t0 = Date.now();
  for (let i = 0; i < n; i += opts.chunk) {
    const jobs = [];
    for (let k = i; k < Math.min(i + opts.chunk, n); k++) {
      // The task number travels in the data (BullMQ refuses numeric custom
      // ids), so a job completed twice is seen as a duplicate.
      const data = payload === null ? { k } : { k, payload };
      jobs.push({ name: 't', data, opts: { priority: 1 + (k % opts.priorities) } });
    }
    await queue.addBulk(jobs);
  }
  const tPublished = Date.now();
  await allDone;
  const cpu = process.cpuUsage(cpu0);
  const redis1 = procUsage(opts['redis-pid'], opts['clk-tck']);
  const nodeCpu = (cpu.user + cpu.system) / 1e6;
  const redisCpu = redis1.cpu - redis0.cpu;
  const counts = await queue.getJobCounts('completed', 'failed', 'wait', 'prioritized', 'active', 'delayed');
  const info = await (await queue.client).info('server');
  const redisVersion = (/redis_version:(\S+)/.exec(info) || [])[1] || 'unknown';
  await worker.close();
  await queue.close();

  const report = {
    system: 'bullmq',
    bullmq_version: require('bullmq/package.json').version,
    node_version: process.version,
    redis_version: redisVersion,
    tasks: n,
    counted_once: completed,
    duplicates,
    failed,
    job_counts: counts,
    publish_rate: (n * 1000) / Math.max(tPublished - t0, 1),
    publish_seconds: (tPublished - t0) / 1000,
    end_to_end_rate: (n * 1000) / Math.max(tDone - t0, 1),
    end_to_end_seconds: (tDone - t0) / 1000,
    submit_to_start: latency(toStart),
    submit_to_finish: latency(toFinish),
    processes: [
      {
        process: 'node (queue + worker)',
        pid: process.pid,
        cpu_seconds: nodeCpu,
        cpu_us_per_task: (nodeCpu * 1e6) / n,
        peak_rss_mib: process.resourceUsage().maxRSS / 1024,
      },
      {
        process: 'redis',
        pid: opts['redis-pid'],
        cpu_seconds: redisCpu,
        cpu_us_per_task: (redisCpu * 1e6) / n,
        peak_rss_mib: redis1.rssMiB,
      },
    ],
    cpu_seconds_total: nodeCpu + redisCpu,
    cpu_us_per_task_total: ((nodeCpu + redisCpu) * 1e6) / n,
    settings: {
      tasks: n,
      processes: 1,
      workers: 1,
      concurrency: opts.concurrency,
      add_bulk_chunk: opts.chunk,
      priorities: Array.from({ length: opts.priorities }, (_, i) => i + 1),
      payload_bytes: opts['payload-bytes'],
      processor: 'async () => {} (no-op)',
      remove_on_complete: false,
      redis: "its own redis-server, no persistence (--save '' --appendonly no)",
    },
  };
  const text = JSON.stringify(report, null, 2);
  if (opts.json) writeFileSync(opts.json, text + '\n');
  console.log(text);
  if (completed !== n || duplicates || failed) {
    console.error(`bullmq-bench: ${completed} of ${n} jobs completed once, ${duplicates} duplicates, ${failed} failed`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(`bullmq-bench: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
