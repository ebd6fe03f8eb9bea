// What the release .wasm is made of: sections, and code bytes per crate from the function
// names the build keeps in its `name` section (demangled Rust paths), in the spirit of
// twiggy's and cargo-bloat's per-crate views, without installing either.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";

export const gzip = (bytes) => gzipSync(bytes, { level: 9 }).length;

/** An unsigned LEB128 number at `p`: its value and the position after it. */
function readLeb(bytes, p) {
  let result = 0;
  let shift = 0;
  let byte;
  do {
    byte = bytes[p++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [result, p];
}

/** Parses the sections of a wasm module, the function bodies' sizes and their names. */
export function parseWasm(bytes) {
  let p = 8;
  const leb = () => {
    const [value, next] = readLeb(bytes, p);
    p = next;
    return value;
  };
  const sections = [];
  const bodies = []; // sizes of defined functions, in order
  const names = new Map(); // function index -> name
  let imported = 0;
  while (p < bytes.length) {
    const id = bytes[p++];
    const length = leb();
    const start = p;
    const end = p + length;
    let name = SECTION_NAMES[id] ?? `section ${id}`;
    if (id === 0) {
      const nameLength = leb();
      name = `custom "${bytes.subarray(p, p + nameLength).toString()}"`;
      p += nameLength;
      if (name === 'custom "name"') {
        while (p < end) {
          const sub = bytes[p++];
          const subLength = leb();
          const subEnd = p + subLength;
          if (sub === 1) {
            const count = leb();
            for (let i = 0; i < count; i++) {
              const index = leb();
              const l = leb();
              names.set(index, bytes.subarray(p, p + l).toString());
              p += l;
            }
          }
          p = subEnd;
        }
      }
    } else if (id === 2) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        // (not `p += leb()`: that would add to p as it was before leb() moved it)
        const moduleLength = leb();
        p += moduleLength;
        const fieldLength = leb();
        p += fieldLength;
        const kind = bytes[p++];
        if (kind === 0) {
          imported++;
          leb();
        } else if (kind === 1) {
          p++;
          const flags = leb();
          leb();
          if (flags & 1) leb();
        } else if (kind === 2) {
          const flags = leb();
          leb();
          if (flags & 1) leb();
        } else if (kind === 3) {
          p += 2;
        } else if (kind === 4) {
          p++;
          leb();
        }
      }
    } else if (id === 10) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        const size = leb();
        bodies.push(size);
        p += size;
      }
    }
    sections.push({ name, bytes: end - start });
    p = end;
  }
  const functions = bodies.map((size, i) => ({ size, name: names.get(imported + i) ?? null }));
  return { sections, functions };
}

const SECTION_NAMES = {
  1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global", 7: "export",
  8: "start", 9: "element", 10: "code", 11: "data", 12: "data count", 13: "tag",
};

const STD = new Set(["core", "alloc", "std", "compiler_builtins", "dlmalloc", "hashbrown", "std_detect", "rustc_demangle", "panic_abort"]);

/** The crate a demangled function name belongs to. */
export function crateOf(name) {
  if (!name) return "(unnamed)";
  let n = name.replace(/\[[0-9a-f]{8,}\]/g, "");
  if (/^(__wbg|__wbindgen|__externref|wasm_bindgen)/.test(n) || /shim$|^Closure\(/.test(n)) return "wasm-bindgen";
  if (n.startsWith("<")) {
    // <Type as Trait>::method: the crate of the type, else of the trait.
    const inner = n.slice(1);
    const [type, trait] = inner.split(" as ");
    const typeCrate = /^&?(?:mut )?(?:dyn )?([a-z_][a-z0-9_]*)::/.exec(type)?.[1];
    if (typeCrate && !(STD.has(typeCrate) && trait && !STD.has(firstSegment(trait)))) return normalise(typeCrate);
    if (trait) return normalise(firstSegment(trait) ?? "core");
    // <str>::to_lowercase, <[T]>::sort: inherent methods of primitive types.
    return normalise(typeCrate ?? "core");
  }
  const first = /^([a-z_][a-z0-9_]*)::/.exec(n)?.[1];
  if (first) return normalise(first);
  if (/^(mem|str|__rust|rust_|_Z|__)/.test(n) || /^[a-z_]+$/.test(n)) return "Rust std (core, alloc, std)";
  return "(other)";
}

const firstSegment = (path) => /^&?(?:mut )?(?:dyn )?([a-z_][a-z0-9_]*)::/.exec(path)?.[1];

function normalise(crate) {
  if (STD.has(crate)) return "Rust std (core, alloc, std)";
  if (crate === "worker_sys" || crate === "worker") return "worker (workers-rs)";
  if (crate === "wasm_bindgen_futures" || crate === "js_sys" || crate === "web_sys") return crate.replace(/_/g, "-");
  return crate.replace(/_/g, "-");
}

/** edgegram's modules with submodules (`src/<dir>/*.rs`), to group its own code by module. */
function submodules(srcDir) {
  const dirs = {};
  if (!srcDir || !existsSync(srcDir)) return dirs;
  for (const entry of readdirSync(srcDir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      dirs[entry.name] = new Set(readdirSync(path.join(srcDir, entry.name)).filter((f) => f.endsWith(".rs")).map((f) => f.slice(0, -3)));
    }
  }
  return dirs;
}

function moduleOf(name, dirs) {
  const segments = /edgegram::([a-z_]+(?:::[a-z_]+)?)/.exec(name)?.[1]?.split("::") ?? ["(other)"];
  return dirs[segments[0]]?.has(segments[1]) ? `${segments[0]}::${segments[1]}` : segments[0];
}

/** Sizes of a release .wasm: raw, gzip, per section and per crate (and per module of edgegram, given its src/). */
export function wasmReport(file, srcDir) {
  const dirs = submodules(srcDir);
  const bytes = readFileSync(file);
  const { sections, functions } = parseWasm(bytes);
  const byCrate = new Map();
  const byModule = new Map(); // edgegram's own code, by module
  for (const f of functions) {
    const crate = crateOf(f.name);
    byCrate.set(crate, (byCrate.get(crate) ?? 0) + f.size);
    if (crate === "edgegram") {
      const module = moduleOf(f.name, dirs);
      byModule.set(module, (byModule.get(module) ?? 0) + f.size);
    }
  }
  const nameSection = sections.find((s) => s.name === 'custom "name"');
  return {
    raw: bytes.length,
    gzip: gzip(bytes),
    gzipWithoutNames: nameSection ? gzip(stripCustom(bytes, "name")) : null,
    sections,
    functions: functions.length,
    named: functions.filter((f) => f.name).length,
    crates: [...byCrate].map(([crate, size]) => ({ crate, size })).sort((a, b) => b.size - a.size),
    edgegramModules: [...byModule].map(([module, size]) => ({ module, size })).sort((a, b) => b.size - a.size),
  };
}

/** The module without one custom section (to weigh it). */
function stripCustom(bytes, wanted) {
  const parts = [bytes.subarray(0, 8)];
  let p = 8;
  const leb = () => {
    const [value, next] = readLeb(bytes, p);
    p = next;
    return value;
  };
  while (p < bytes.length) {
    const start = p;
    const id = bytes[p++];
    const length = leb();
    const bodyStart = p;
    let drop = false;
    if (id === 0) {
      const nameLength = leb();
      drop = bytes.subarray(p, p + nameLength).toString() === wanted;
    }
    if (!drop) parts.push(bytes.subarray(start, bodyStart + length));
    p = bodyStart + length;
  }
  return Buffer.concat(parts);
}
