// Precompresses the site's static files at build time: beside each
// JavaScript, WebAssembly, CSS, SVG or JSON file under the given
// directory, a Brotli (`.br`, quality 11) and a gzip (`.gz`, level 9) copy,
// each kept only when it is smaller. The server sends them with their
// Content-Encoding to browsers that accept it, so no request spends CPU
// compressing a file that never changes. Copies newer than their source
// are left as they are.
//
//   node scripts/precompress.mjs target/site
import { readdirSync, readFileSync, writeFileSync, statSync, rmSync, existsSync } from 'node:fs';
import { join, extname } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const root = process.argv[2];
if (!root || !existsSync(root)) {
  console.error(`usage: node scripts/precompress.mjs <site root>  (no directory \`${root ?? ''}\`)`);
  process.exit(2);
}
const kinds = new Set(['.js', '.wasm', '.css', '.svg', '.json', '.map']);
let before = 0, br = 0, gz = 0, files = 0;

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) { walk(path); continue; }
    if (!kinds.has(extname(name)) || st.size < 512) continue;
    const data = readFileSync(path);
    files += 1;
    before += data.length;
    for (const [ext, compress] of [
      ['.br', (d) => brotliCompressSync(d, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: d.length } })],
      ['.gz', (d) => gzipSync(d, { level: 9 })],
    ]) {
      const out = path + ext;
      if (existsSync(out) && statSync(out).mtimeMs >= st.mtimeMs) {
        const size = statSync(out).size;
        if (ext === '.br') br += size; else gz += size;
        continue;
      }
      const packed = compress(data);
      if (packed.length < data.length) {
        writeFileSync(out, packed);
        if (ext === '.br') br += packed.length; else gz += packed.length;
      } else {
        rmSync(out, { force: true });
        if (ext === '.br') br += data.length; else gz += data.length;
      }
    }
  }
}
walk(root);
const kb = (n) => `${Math.round(n / 1024)} KB`;
console.log(`precompressed ${files} files under ${root}: ${kb(before)} -> brotli ${kb(br)}, gzip ${kb(gz)}`);
