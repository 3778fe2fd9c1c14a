// The agent imports @gather/fetcher-s3 to fetch; publishing and rolling back are CI code behind
// @gather/fetcher-s3/publish. Each entry is imported in a fresh node process, as the package resolves for
// its users (package.json "exports", built dist), and every module the process loads is recorded.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** The files (file: URLs, relative to the package) loaded by `import(specifier)`, and its export names. */
function load(specifier: string): { files: string[]; exports: string[] } {
  if (!existsSync(new URL('../dist/index.js', import.meta.url))) {
    throw new Error('packages/fetcher-s3/dist is missing: run "pnpm build" first.');
  }
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ load(url, context, nextLoad) { loaded.push(url); return nextLoad(url, context); } });
    const entry = await import(${JSON.stringify(specifier)});
    process.stdout.write(JSON.stringify({ loaded, exports: Object.keys(entry) }));
  `;
  const out = execFileSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { cwd: packageDir, encoding: 'utf8' });
  const { loaded, exports } = JSON.parse(out) as { loaded: string[]; exports: string[] };
  const own = new URL('..', import.meta.url).href;
  return {
    files: loaded.filter((url) => url.startsWith(own) && !url.includes('/node_modules/')).map((url) => url.slice(own.length)),
    exports,
  };
}

describe('package entries', () => {
  it('the main entry loads the fetcher and none of the publish code', () => {
    const { files, exports } = load('@gather/fetcher-s3');
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/fetcher.js');
    expect(files.filter((file) => /^dist\/(publish|rollback|cli-commands)/.test(file))).toEqual([]);
    expect(exports).toContain('createS3Fetcher');
    expect(exports).not.toContain('publishBundle');
    expect(exports).not.toContain('rollbackCommand');
  });

  it('the main entry exports the public API only', () => {
    expect(load('@gather/fetcher-s3').exports.sort()).toEqual(['createS3Fetcher', 's3OptionsFromEnv']);
  });

  it('@gather/fetcher-s3/publish has publish, rollback and their commands', () => {
    const { files, exports } = load('@gather/fetcher-s3/publish');
    expect(files).toContain('dist/publish/publish.js');
    expect(files).toContain('dist/publish/rollback.js');
    for (const name of ['publishBundle', 'rollbackBundle', 'listBundleVersions', 'publishCommand', 'rollbackCommand', 'PublishError']) {
      expect(exports).toContain(name);
    }
  });
});
