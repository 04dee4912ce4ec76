import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';

/**
 * Aedes on a plain TCP listener, with default options, the way its own
 * `benchmarks/server.js` runs it. Started by bench.ts as a separate process so that the
 * broker never shares an event loop with the load generator.
 *
 * Usage: node dist/scripts/bench/aedes-server.js --port P [--host 127.0.0.1]
 */

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write(`aedes-server: --port must be 1-65535, got ${String(values.port)}\n`);
  process.exit(2);
}

const broker = await Aedes.createBroker();
const server = createServer((socket) => {
  broker.handle(socket);
});

let closing = false;
function shutdown(): void {
  if (closing) return;
  closing = true;
  server.close();
  // Open client sockets would keep the process alive; the bench wants it gone now.
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// bench.ts holds our stdin open; it closes when bench exits, even if it is killed outright,
// so a stray broker cannot outlive its bench.
process.stdin.on('end', shutdown);
process.stdin.resume();

server.on('error', (err) => {
  process.stderr.write(`aedes-server: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, values.host);
