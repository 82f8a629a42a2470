// dist/: the systemd unit passes `systemd-analyze verify` (with ExecStart pointed at the built
// binary, since verify wants the program to exist), and the seccomp profile is valid JSON that
// allows io_uring.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO, BIN, tempDir } from '../lib/gateway.mjs';

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

test('dist/bifrost.service passes systemd-analyze verify', { skip: hasAnalyze ? false : 'systemd-analyze is not installed' }, () => {
  const dir = tempDir();
  const unit = readFileSync(join(REPO, 'dist', 'bifrost.service'), 'utf8').replace(/\/usr\/local\/bin\/bifrost/g, BIN);
  const path = join(dir, 'bifrost.service');
  writeFileSync(path, unit);
  const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
  const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('bifrost.service'));
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.deepEqual(complaints, [], complaints.join('\n'));
});

test('dist/seccomp-bifrost.json is valid and allows the io_uring system calls', () => {
  const p = JSON.parse(readFileSync(join(REPO, 'dist', 'seccomp-bifrost.json'), 'utf8'));
  assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
  const allowed = new Set(p.syscalls.filter((s) => s.action === 'SCMP_ACT_ALLOW').flatMap((s) => s.names));
  for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'socket', 'accept4', 'fdatasync'])
    assert.ok(allowed.has(name), `${name} is not allowed`);
});

test('dist/bifrost is a static ELF executable (no program interpreter)', () => {
  const b = readFileSync(join(REPO, 'dist', 'bifrost')); // the shipped artifact, whatever BIFROST_BIN says
  assert.equal(b.toString('latin1', 1, 4), 'ELF');
  const phoff = Number(b.readBigUInt64LE(0x20)), phentsize = b.readUInt16LE(0x36), phnum = b.readUInt16LE(0x38);
  const types = Array.from({ length: phnum }, (_, i) => b.readUInt32LE(phoff + i * phentsize));
  assert.ok(!types.includes(3), 'PT_INTERP present: dynamically linked');
  assert.ok(!types.includes(2), 'PT_DYNAMIC present: dynamically linked');
});
