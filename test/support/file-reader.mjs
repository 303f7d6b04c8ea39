// Reads a file in a tight loop until told to stop (stdin closes); reports what it saw.
// Runs as its own process so the loop cannot stall the api under test.
import { readFileSync } from 'node:fs';

const [path, pattern] = process.argv.slice(2);
const valid = new RegExp(pattern);
let reads = 0;
let missing = 0;
const bad = [];
const seen = new Set();
let stop = false;
process.stdin.on('close', () => (stop = true));
process.stdin.resume();
const loop = () => {
  const until = Date.now() + 20;
  while (Date.now() < until) {
    let text;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      missing++;
      continue;
    }
    reads++;
    if (!valid.test(text)) bad.push(text.length);
    else seen.add(text);
  }
  if (stop) {
    process.stdout.write(JSON.stringify({ reads, missing, bad: bad.length, badLengths: bad.slice(0, 10), distinct: seen.size }));
    process.exit(0);
  }
  setImmediate(loop);
};
loop();
