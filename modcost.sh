cd /tmp/rss-study/copy
for m in none node:net pino yaml mqtt-packet "pino yaml mqtt-packet" ; do
node --expose-gc --input-type=module -e "
import { readFileSync } from 'node:fs'
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status','utf8'))[1])/1024
gc(); await new Promise(r=>setTimeout(r,200)); gc(); const a = rss(); const h0 = process.memoryUsage().heapUsed
for (const m of '$m'.split(' ')) if (m !== 'none') await import(m)
gc(); await new Promise(r=>setTimeout(r,200)); gc(); const b = rss()
console.log('$m'.padEnd(24), 'base', a.toFixed(1), 'after', b.toFixed(1), 'delta', (b-a).toFixed(1), 'MB heapUsed delta', ((process.memoryUsage().heapUsed-h0)/1048576).toFixed(2))
"
done
