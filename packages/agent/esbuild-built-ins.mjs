// An esbuild plugin shared by the agent's two builds (bundle.mjs: the npm bin; tools/binary/build.mjs: the
// single executable). A static `import { x } from 'node:util'` makes Node build an ES module facade of the
// whole built-in, and the facade reads every export, so every lazy one loads: node:util's load
// worker_threads and the assert differ, node:crypto's webcrypto, node:fs's fs/promises (a `gather-agent
// version` ~10 ms slower, a run ~5 ms; tools/bench/startup). Here each such import becomes a small module
// that takes only the names its importer uses from process.getBuiltinModule() (Node 22.3+; require() before
// that), and a require() of a built-in (bundled CommonJS) gets the built-in itself.
import { readFileSync } from 'node:fs';

export const builtInsWithoutFacade = {
  name: 'built-ins-without-facade',
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) =>
      // The fallback require() of the modules below stays a plain require of the built-in.
      args.namespace === 'node-built-in'
        ? { path: args.path, external: true }
        : {
            // One module per importer: each takes the names its importer uses.
            path: `${args.path}#${args.importer}`,
            namespace: 'node-built-in',
            pluginData: { id: args.path, importer: args.importer, kind: args.kind },
          },
    );
    build.onLoad({ filter: /.*/, namespace: 'node-built-in' }, ({ pluginData: { id, importer, kind } }) => {
      const builtIn = `(process.getBuiltinModule?.(${JSON.stringify(id)}) ?? require(${JSON.stringify(id)}))`;
      const names = kind === 'import-statement' ? importedNames(readFileSync(importer, 'utf8'), id) : undefined;
      if (!names) return { contents: `module.exports = ${builtIn};`, loader: 'js' };
      const exports = [...names].map((name) => `export const ${name} = builtIn.${name};`);
      return { contents: [`const builtIn = ${builtIn};`, 'export default builtIn;', ...exports].join('\n'), loader: 'js' };
    });
  },
};

/**
 * The names `text` imports from the built-in `id` in statements such as tsc writes them
 * (`import d, { a, b as c } from 'node:x';`), or undefined when it imports it another way (`import * as`),
 * which then gets the whole built-in. A name missed here fails the build ("No matching export"), not a run.
 */
export function importedNames(text, id) {
  const from = `from\\s*['"]${id.replace(/[/]/g, '\\/')}['"]`;
  if (new RegExp(`import\\s*(?:[\\w$]+\\s*,\\s*)?\\*\\s*as\\s+[\\w$]+\\s*${from}`).test(text)) return undefined;
  const statement = new RegExp(`import\\s+(?:[\\w$]+\\s*,?\\s*)?(?:\\{([^}]*)\\})?\\s*${from}`, 'g');
  const names = new Set();
  let matched = false;
  for (const [, list = ''] of text.matchAll(statement)) {
    matched = true;
    for (const specifier of list.split(',')) {
      const name = specifier.trim().split(/\s+as\s+/)[0];
      if (name && !name.startsWith('type ')) names.add(name);
    }
  }
  return matched ? names : undefined;
}
