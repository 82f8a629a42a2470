// config.example.json documents every option: it must stay a config the gateway accepts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REPO, runBifrost } from '../lib/gateway.mjs';

test('bifrost check accepts config.example.json', async () => {
  const env = {};
  for (const name of ['ANTHROPIC_API_KEY', 'OPENAI_API_KEY', 'OPENROUTER_API_KEY', 'OPENROUTER_API_KEY_2',
    'AZURE_OPENAI_API_KEY', 'GROQ_API_KEY', 'BIFROST_ADMIN_TOKEN']) env[name] = `test-${name}`;
  const r = await runBifrost(['check', '-c', join(REPO, 'config.example.json')], { env });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /ok/);
});
