// Validates a check's stdout against the gather output contract (see README.md).
// Usage: node checks/validate.mjs < stdout.txt   -> exit 0 and a summary, or exit 1 and the reason.
import { readFileSync } from "node:fs";

const TYPES = new Set(["boolean", "number", "string", "array", "object"]);

export function parseOutput(text) {
  const trimmed = text.trim();
  if (trimmed === "") throw new Error("no output");
  let values;
  try {
    values = [JSON.parse(trimmed)];
  } catch {
    values = trimmed.split("\n").filter((l) => l.trim() !== "").map((l, i) => {
      try { return JSON.parse(l); } catch (e) { throw new Error(`invalid JSON on line ${i + 1}: ${e.message}`); }
    });
  }
  const results = [];
  for (const v of values) {
    if (Array.isArray(v)) results.push(...v);
    else results.push(v);
  }
  results.forEach((r, i) => {
    const where = `result ${i + 1}`;
    if (r === null || typeof r !== "object" || Array.isArray(r)) throw new Error(`${where}: not an object`);
    if (typeof r.name !== "string" || r.name === "") throw new Error(`${where}: empty or missing name`);
    if (!TYPES.has(r.type)) throw new Error(`${where} (${r.name}): invalid type ${JSON.stringify(r.type)}`);
    if (!("value" in r)) throw new Error(`${where} (${r.name}): missing value`);
    const v = r.value;
    const ok =
      (r.type === "boolean" && typeof v === "boolean") ||
      (r.type === "number" && typeof v === "number" && Number.isFinite(v)) ||
      (r.type === "string" && typeof v === "string") ||
      (r.type === "array" && Array.isArray(v)) ||
      (r.type === "object" && v !== null && typeof v === "object" && !Array.isArray(v));
    if (!ok) throw new Error(`${where} (${r.name}): value ${JSON.stringify(v)} is not a ${r.type}`);
  });
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = readFileSync(0, "utf8");
  try {
    const results = parseOutput(text);
    console.log(`ok: ${results.length} results`);
  } catch (e) {
    console.log(`INVALID: ${e.message}`);
    process.exit(1);
  }
}
