// Drives the REAL codellama-lsp server over stdio the way the VS Code extension does: the same
// vscode-jsonrpc / vscode-languageserver-protocol stack, the same initializationOptions (built by the
// extension's own src/config.ts from package.json's setting defaults), and the extension's own helpers for
// the explanation command and the status bar. VS Code itself cannot be downloaded in CI, so this is the
// protocol path it would take.
//
// Environment (set by tests/editors/test_vscode_client.py):
//   CODELLAMA_LSP_TEST_SERVER  JSON array: the server command, e.g. ["/venv/bin/python","-m","lsp","serve"]
//   CODELLAMA_LSP_TEST_TGI     URL of tests/tgi_server.py (TGI protocol, scripted replies)
// Run: npm run compile && node --test test/

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import * as rpc from 'vscode-languageserver-protocol/node';

const require = createRequire(import.meta.url);
const config = require('../out/config.js');
const protocol = require('../out/protocol.js');
const statusModel = require('../out/statusModel.js');
const pkg = require('../package.json');

const SERVER = process.env.CODELLAMA_LSP_TEST_SERVER;
const TGI_URL = process.env.CODELLAMA_LSP_TEST_TGI;
const skip = SERVER && TGI_URL ? false : 'set CODELLAMA_LSP_TEST_SERVER and CODELLAMA_LSP_TEST_TGI (see tests/editors/test_vscode_client.py)';
const TIMEOUT = 30_000;

const URI = 'file:///tmp/codellama-vscode-test/stats.py';
// The emoji is two UTF-16 code units: LSP positions (and VS Code's) count those, not code points.
const SOURCE = [
    'import math',
    '',
    '',
    'def mean(values):',
    '    total = 0',
    '    for v in values:',
    '        total = total + v',
    '    return total / len(values)  # 👍 naïve',
    '',
    '',
    'def spread(values):',
    '    return max(values) - min(values)',
    '',
].join('\n');

// ---- what VS Code would do ----------------------------------------------------------------------------

/** `workspace.getConfiguration('codellama').get(key)` with nothing set: package.json's defaults. */
function settingsGetter(overrides = {}) {
    const properties = pkg.contributes.configuration.properties;
    return (key) => (key in overrides ? overrides[key] : properties[`codellama.${key}`]?.default);
}

/** The capabilities vscode-languageclient 11 announces for the features this server uses. */
const CAPABILITIES = {
    general: { positionEncodings: ['utf-16'] },
    window: { workDoneProgress: true, showDocument: { support: true }, showMessage: { messageActionItem: { additionalPropertiesSupport: true } } },
    workspace: {
        applyEdit: true,
        workspaceEdit: { documentChanges: true, resourceOperations: ['create', 'rename', 'delete'], failureHandling: 'textOnlyTransactional' },
        didChangeConfiguration: { dynamicRegistration: true },
        executeCommand: { dynamicRegistration: true },
        configuration: true,
        workspaceFolders: true,
    },
    textDocument: {
        synchronization: { dynamicRegistration: true, willSave: true, willSaveWaitUntil: true, didSave: true },
        completion: {
            dynamicRegistration: true,
            contextSupport: true,
            completionItem: { snippetSupport: true, insertReplaceSupport: true, documentationFormat: ['markdown', 'plaintext'] },
        },
        inlineCompletion: { dynamicRegistration: true },
        codeAction: {
            dynamicRegistration: true,
            isPreferredSupport: true,
            disabledSupport: true,
            dataSupport: true,
            honorsChangeAnnotations: true,
            resolveSupport: { properties: ['edit', 'command'] },
            codeActionLiteralSupport: {
                codeActionKind: {
                    valueSet: ['', 'quickfix', 'refactor', 'refactor.extract', 'refactor.inline', 'refactor.rewrite', 'source', 'source.organizeImports'],
                },
            },
        },
    },
};

/** Applies LSP TextEdits (UTF-16 positions, non-overlapping) to a string, as VS Code applies a WorkspaceEdit. */
function applyTextEdits(text, edits) {
    const lineStarts = [0];
    for (let i = 0; i < text.length; i++) {
        if (text[i] === '\n') {
            lineStarts.push(i + 1);
        }
    }
    const offsetAt = ({ line, character }) => {
        assert.ok(line < lineStarts.length, `line ${line} is outside the document`);
        const lineEnd = line + 1 < lineStarts.length ? lineStarts[line + 1] - 1 : text.length;
        assert.ok(lineStarts[line] + character <= lineEnd, `character ${character} is outside line ${line}`);
        return lineStarts[line] + character;
    };
    const sorted = edits
        .map((e) => ({ start: offsetAt(e.range.start), end: offsetAt(e.range.end), newText: e.newText }))
        .sort((a, b) => b.start - a.start);
    let out = text;
    for (const e of sorted) {
        out = out.slice(0, e.start) + e.newText + out.slice(e.end);
    }
    return out;
}

// ---- the TGI test server's control routes -------------------------------------------------------------

const tgi = {
    async script(...replies) {
        const response = await fetch(`${TGI_URL}/_control/script`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ replies }),
        });
        assert.equal(response.status, 200);
    },
    async reset() {
        assert.equal((await fetch(`${TGI_URL}/_control/reset`, { method: 'POST' })).status, 200);
    },
    async requests() {
        return (await fetch(`${TGI_URL}/_control/requests`)).json();
    },
};

// ---- the session -------------------------------------------------------------------------------------

describe('codellama-lsp through the VS Code client protocol', { skip, timeout: 120_000 }, () => {
    /** @type {import('node:child_process').ChildProcess} */
    let child;
    /** @type {rpc.ProtocolConnection} */
    let conn;
    let stderr = '';
    const statuses = [];
    const messages = [];
    const shownDocuments = [];
    const appliedEdits = [];
    const progress = [];
    let initializeResult;
    const docs = new Map(); // uri -> {text, version}: the client's view of the documents

    const waitFor = async (what, predicate, timeout = 10_000) => {
        const deadline = Date.now() + timeout;
        while (!predicate()) {
            if (Date.now() > deadline) {
                assert.fail(`timed out waiting for ${what}; server log:\n${stderr.slice(-3000)}`);
            }
            await new Promise((r) => setTimeout(r, 20));
        }
    };

    const open = (uri, text, languageId = 'python') => {
        docs.set(uri, { text, version: 1 });
        return conn.sendNotification(rpc.DidOpenTextDocumentNotification.type, {
            textDocument: { uri, languageId, version: 1, text },
        });
    };

    /** Applies a WorkspaceEdit to the client's copy and tells the server, as VS Code does. */
    const applyWorkspaceEdit = async (edit) => {
        assert.ok(edit.documentChanges, 'the edit has documentChanges (versioned)');
        for (const change of edit.documentChanges) {
            const doc = docs.get(change.textDocument.uri);
            assert.ok(doc, `edit for an unknown document ${change.textDocument.uri}`);
            assert.equal(change.textDocument.version, doc.version, 'the edit is for the current version');
            doc.text = applyTextEdits(doc.text, change.edits);
            doc.version += 1;
            await conn.sendNotification(rpc.DidChangeTextDocumentNotification.type, {
                textDocument: { uri: change.textDocument.uri, version: doc.version },
                contentChanges: [{ text: doc.text }],
            });
        }
    };

    const inline = (uri, position) =>
        conn.sendRequest(rpc.InlineCompletionRequest.type, {
            textDocument: { uri },
            position,
            context: { triggerKind: rpc.InlineCompletionTriggerKind.Automatic },
        });

    const runCommand = (command, args) => conn.sendRequest(rpc.ExecuteCommandRequest.type, { command, arguments: args });

    before(async () => {
        const command = JSON.parse(SERVER);
        const env = { ...process.env };
        for (const key of Object.keys(env)) {
            if (key.startsWith('CODELLAMA_LSP_') || key === 'HF_TOKEN') {
                delete env[key];
            }
        }
        child = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk) => {
            stderr += chunk;
        });
        conn = rpc.createProtocolConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
        conn.onNotification(protocol.STATUS_METHOD, (params) => statuses.push(params));
        conn.onNotification(rpc.ShowMessageNotification.type, (params) => messages.push(params));
        conn.onNotification(rpc.LogMessageNotification.type, () => {});
        conn.onUnhandledProgress((params) => progress.push(params));
        conn.onRequest(rpc.WorkDoneProgressCreateRequest.type, () => null);
        conn.onRequest(rpc.RegistrationRequest.type, () => null);
        conn.onRequest(rpc.ShowMessageRequest.type, (params) => {
            messages.push(params);
            return null;
        });
        conn.onRequest(rpc.ShowDocumentRequest.type, (params) => {
            shownDocuments.push(params);
            return { success: true };
        });
        conn.onRequest(rpc.ApplyWorkspaceEditRequest.type, async (params) => {
            appliedEdits.push(params);
            await applyWorkspaceEdit(params.edit);
            return { applied: true };
        });
        conn.listen();
    });

    after(async () => {
        if (conn && child.exitCode === null) {
            try {
                await conn.sendRequest(rpc.ShutdownRequest.type);
                await conn.sendNotification(rpc.ExitNotification.type);
            } catch {
                // the exit code below tells
            }
        }
        const exited = await Promise.race([
            new Promise((resolve) => child.once('exit', () => resolve(true))),
            new Promise((resolve) => setTimeout(() => resolve(child.exitCode !== null), 5000)),
        ]);
        conn?.dispose();
        if (!exited) {
            child.kill();
            assert.fail('the server did not exit after shutdown/exit');
        }
    });

    it('initializes with the extension\'s initializationOptions and reports idle', { timeout: TIMEOUT }, async () => {
        const initializationOptions = config.buildInitializationOptions(settingsGetter({ endpoint: TGI_URL, backend: 'tgi' }));
        // What the extension sends: every server setting, under "codellama", no token, no client-only keys.
        assert.deepEqual(Object.keys(initializationOptions), ['codellama']);
        assert.equal(initializationOptions.codellama.endpoint, TGI_URL);
        assert.equal(initializationOptions.codellama.completion.debounceMs, 60);
        assert.ok(!('apiToken' in initializationOptions.codellama));
        assert.ok(!('serverPath' in initializationOptions.codellama));

        initializeResult = await conn.sendRequest(rpc.InitializeRequest.type, {
            processId: process.pid,
            clientInfo: { name: 'Visual Studio Code', version: '1.91.0' },
            rootUri: 'file:///tmp/codellama-vscode-test',
            workspaceFolders: [{ uri: 'file:///tmp/codellama-vscode-test', name: 'codellama-vscode-test' }],
            capabilities: CAPABILITIES,
            initializationOptions,
        });
        const caps = initializeResult.capabilities;
        assert.ok(caps.inlineCompletionProvider, 'inline completion is offered (vscode-languageclient registers it)');
        assert.ok(caps.completionProvider, 'completion is offered');
        assert.equal(caps.codeActionProvider?.resolveProvider, true, 'code actions resolve lazily');
        const commands = caps.executeCommandProvider?.commands ?? [];
        for (const name of [protocol.RUN_COMMAND, protocol.TOGGLE_COMPLETIONS_COMMAND, protocol.SHOW_EXPLANATION_COMMAND]) {
            assert.ok(commands.includes(name), `the server implements ${name}`);
        }
        // The extension's own command ids must not collide with the server's: vscode-languageclient registers
        // a VS Code command for each of the server's.
        const ours = pkg.contributes.commands.map((c) => c.command);
        assert.deepEqual(ours.filter((c) => commands.includes(c)), []);

        await conn.sendNotification(rpc.InitializedNotification.type, {});
        await waitFor('codellama/status idle', () => statuses.some((s) => s.state === 'idle'));
        assert.ok(protocol.isStatusParams(statuses[0]), JSON.stringify(statuses[0]));
        // package.json's defaults are all valid for the server: it complains about none of them.
        assert.deepEqual(messages, []);
    });

    it('inline completion comes from the model with the completion settings', { timeout: TIMEOUT }, async () => {
        await tgi.reset();
        await tgi.script({ text: '```python\nmath.fsum(values) / len(values)\n```' });
        await open(URI, SOURCE);
        statuses.length = 0;
        const result = await inline(URI, { line: 12, character: 0 });
        const items = Array.isArray(result) ? result : result.items;
        assert.equal(items.length, 1, JSON.stringify(result));
        assert.equal(items[0].insertText, 'math.fsum(values) / len(values)');

        const [body] = await tgi.requests();
        assert.ok(body, 'the model was asked');
        assert.equal(body.parameters.temperature, 0.1, 'codellama.completion.temperature');
        assert.ok(body.parameters.max_new_tokens <= 160, 'codellama.completion.maxNewTokens');
        assert.ok(body.inputs.includes('def spread(values):'));

        // codellama/status: busy while the model works, idle after, naming the model for the status bar.
        await waitFor('status idle after busy', () => statuses.some((s) => s.state === 'idle'));
        assert.deepEqual(
            statuses.map((s) => s.state),
            ['busy', 'idle'],
        );
        const last = statuses.at(-1);
        assert.ok(last.backend, 'the status names the model or backend');
        let snapshot = statusModel.initialSnapshot('tgi');
        for (const s of statuses) {
            snapshot = statusModel.applyStatus(snapshot, s);
        }
        const view = statusModel.describeStatus(snapshot);
        assert.match(view.text, /CodeLlama/);
        assert.ok(view.text.includes(statusModel.shortModelName(last.backend)), view.text);
        assert.equal(view.alert, undefined);
    });

    it('lists code actions, resolves Refactor to a versioned edit and applies it', { timeout: TIMEOUT }, async () => {
        await tgi.reset();
        await tgi.script({ text: 'Sure:\n```python\ndef mean(values):\n    return math.fsum(values) / len(values)\n```\n' });
        const range = { start: { line: 5, character: 4 }, end: { line: 5, character: 4 } };
        const actions = await conn.sendRequest(rpc.CodeActionRequest.type, {
            textDocument: { uri: URI },
            range,
            context: { diagnostics: [], triggerKind: rpc.CodeActionTriggerKind.Invoked },
        });
        const byTitle = Object.fromEntries(actions.map((a) => [a.title, a]));
        assert.ok(byTitle['CodeLlama: Explain'], JSON.stringify(actions));
        assert.ok(byTitle['CodeLlama: Refactor']);
        assert.equal(byTitle['CodeLlama: Refactor'].kind, 'refactor.rewrite');
        assert.equal(byTitle['CodeLlama: Explain'].kind, '');
        assert.equal(byTitle['CodeLlama: Refactor'].edit, undefined, 'listing is cheap: no edit yet');
        assert.deepEqual(await tgi.requests(), [], 'listing does not call the model');

        const resolved = await conn.sendRequest(rpc.CodeActionResolveRequest.type, byTitle['CodeLlama: Refactor']);
        assert.equal(resolved.disabled, undefined, JSON.stringify(resolved.disabled));
        assert.ok(resolved.edit?.documentChanges?.length === 1, JSON.stringify(resolved));
        const [change] = resolved.edit.documentChanges;
        assert.equal(change.textDocument.uri, URI);
        assert.equal(change.textDocument.version, 1);
        await applyWorkspaceEdit(resolved.edit);
        const expected = SOURCE.replace(
            'def mean(values):\n    total = 0\n    for v in values:\n        total = total + v\n    return total / len(values)  # 👍 naïve',
            'def mean(values):\n    return math.fsum(values) / len(values)',
        );
        assert.equal(docs.get(URI).text, expected);
        assert.equal(docs.get(URI).version, 2);
    });

    it('resolves Explain to codellama.showExplanation, which the extension renders itself', { timeout: TIMEOUT }, async () => {
        await tgi.reset();
        await tgi.script({ text: '`spread` returns the **range** of the values.' });
        const actions = await conn.sendRequest(rpc.CodeActionRequest.type, {
            textDocument: { uri: URI },
            range: { start: { line: 7, character: 0 }, end: { line: 8, character: 36 } },
            context: { diagnostics: [], only: [''] },
        });
        const explain = actions.find((a) => a.title === 'CodeLlama: Explain');
        assert.ok(explain, JSON.stringify(actions));
        const resolved = await conn.sendRequest(rpc.CodeActionResolveRequest.type, explain);
        assert.equal(resolved.command?.command, protocol.SHOW_EXPLANATION_COMMAND, JSON.stringify(resolved));
        // The extension's executeCommand middleware takes it from here (client.ts): no showDocument round trip.
        const explanation = protocol.explanationFromArgs(resolved.command.arguments);
        assert.ok(explanation, JSON.stringify(resolved.command.arguments));
        assert.equal(explanation.title, 'Explain');
        assert.equal(explanation.uri, URI);
        assert.ok(protocol.isRange(explanation.range));
        const markdown = protocol.explanationMarkdown(explanation);
        assert.match(markdown, /^# Explain\n/);
        assert.ok(markdown.includes('`spread` returns the **range** of the values.'));
        assert.ok(markdown.includes('stats.py, lines 8–9'), markdown);
        assert.deepEqual(shownDocuments, []);
    });

    it('codellama.run: explain answers markdown without showing it; refactor applies through workspace/applyEdit', { timeout: TIMEOUT }, async () => {
        await tgi.reset();
        await tgi.script({ text: 'It returns the spread.' });
        const where = { start: { line: 8, character: 4 }, end: { line: 8, character: 4 } }; // inside spread()
        const explained = await runCommand(protocol.RUN_COMMAND, [{ action: 'explain', uri: URI, range: where, show: false }]);
        assert.ok(protocol.isRunResult(explained), JSON.stringify(explained));
        assert.equal(explained.kind, 'markdown');
        assert.equal(explained.text, 'It returns the spread.');
        assert.deepEqual(shownDocuments, [], 'show: false leaves the rendering to the extension');

        await tgi.script({ text: '```python\ndef spread(values):\n    low, high = min(values), max(values)\n    return high - low\n```' });
        const refactored = await runCommand(protocol.RUN_COMMAND, [
            { action: 'refactor', uri: URI, range: where, instruction: 'compute min and max once', apply: true },
        ]);
        assert.equal(refactored.kind, 'code');
        assert.equal(refactored.applied, true, JSON.stringify(refactored));
        assert.equal(appliedEdits.length, 1);
        assert.ok(docs.get(URI).text.endsWith('def spread(values):\n    low, high = min(values), max(values)\n    return high - low\n'), docs.get(URI).text);
        const [, second] = await tgi.requests();
        assert.ok(second.inputs.includes('compute min and max once'), 'the instruction reaches the prompt');
    });

    it('codellama.toggleCompletions turns inline completion off and on', { timeout: TIMEOUT }, async () => {
        await tgi.reset();
        assert.equal(await runCommand(protocol.TOGGLE_COMPLETIONS_COMMAND, [false]), false);
        const off = await inline(URI, { line: 0, character: 11 });
        assert.deepEqual(off?.items ?? off ?? [], []);
        assert.deepEqual(await tgi.requests(), [], 'no model call while completions are off');
        assert.equal(await runCommand(protocol.TOGGLE_COMPLETIONS_COMMAND, []), true);
    });

    it('workspace/didChangeConfiguration takes the extension\'s settings object', { timeout: TIMEOUT }, async () => {
        await tgi.reset();
        const params = config.buildDidChangeConfiguration(
            settingsGetter({ endpoint: TGI_URL, backend: 'tgi', 'completion.temperature': 0.3, maxRetries: 0 }),
        );
        assert.equal(params.settings.codellama.completion.temperature, 0.3);
        await conn.sendNotification(rpc.DidChangeConfigurationNotification.type, params);
        await tgi.script({ text: '```python\nimport os\n```' });
        await inline(URI, { line: 1, character: 0 });
        const [body] = await tgi.requests();
        assert.equal(body.parameters.temperature, 0.3);
        assert.deepEqual(messages, [], 'the new settings are valid');
    });

    it('a failing model shows as an error in the status bar, then recovers', { timeout: TIMEOUT }, async () => {
        await tgi.reset();
        statuses.length = 0;
        // A new position: the server may answer a repeated one from its cache without asking the model.
        await tgi.script({ status: 401, body: JSON.stringify({ error: 'Unauthorized', error_type: 'authentication' }) });
        const failed = await inline(URI, { line: 2, character: 0 });
        assert.deepEqual(failed?.items ?? failed ?? [], []);
        await waitFor('status error', () => statuses.some((s) => s.state === 'error'));
        const error = statuses.find((s) => s.state === 'error');
        assert.ok(error.message, 'the error says what happened');
        let snapshot = statusModel.applyStatus(statusModel.initialSnapshot('tgi'), error);
        assert.equal(statusModel.describeStatus(snapshot).alert, 'error');
        assert.ok(statusModel.describeStatus(snapshot).tooltip.includes(error.message));
        await waitFor('an error message for the user', () => messages.some((m) => m.type === rpc.MessageType.Error));

        await tgi.script({ text: '```python\nimport os\n```' });
        await inline(URI, { line: 2, character: 0 });
        await waitFor('status idle again', () => statuses.at(-1)?.state === 'idle');
        snapshot = statusModel.applyStatus(snapshot, statuses.at(-1));
        assert.equal(statusModel.describeStatus(snapshot).alert, undefined);
    });

    it('shuts down cleanly', { timeout: TIMEOUT }, async () => {
        await conn.sendRequest(rpc.ShutdownRequest.type);
        await conn.sendNotification(rpc.ExitNotification.type);
        const code = await new Promise((resolve) => {
            if (child.exitCode !== null) {
                resolve(child.exitCode);
            } else {
                child.once('exit', (c) => resolve(c));
            }
        });
        assert.equal(code, 0, stderr.slice(-2000));
    });
});

// Pure helpers of the extension that need no server.
describe('extension helpers', () => {
    it('leaves unset settings out so the server\'s defaults apply, and expands paths', () => {
        const options = config.buildInitializationOptions(
            settingsGetter({ endpoint: '  ', promptsPath: '~/prompts', tokenizer: '${workspaceFolder}/tok.json' }),
            { home: '/home/u', workspaceFolder: '/ws' },
        );
        assert.ok(!('endpoint' in options.codellama));
        assert.ok(!('model' in options.codellama));
        assert.equal(options.codellama.promptsPath, '/home/u/prompts');
        assert.equal(options.codellama.tokenizer, '/ws/tok.json');
        assert.deepEqual(Object.keys(options.codellama.completion).sort(), ['debounceMs', 'disabledLanguages', 'enable', 'maxLines', 'maxNewTokens', 'temperature']);
    });

    it('mirrors every server setting in package.json', () => {
        const properties = Object.keys(pkg.contributes.configuration.properties).map((k) => k.replace(/^codellama\./, ''));
        assert.deepEqual([...properties].sort(), [...config.SERVER_SETTINGS, ...config.CLIENT_SETTINGS].sort());
    });

    it('passes the token in the environment, never in the settings', () => {
        const cmd = config.buildServerCommand(settingsGetter(), 's3cret', { PATH: '/bin' });
        assert.equal(cmd.command, 'codellama-lsp');
        assert.deepEqual(cmd.args, ['serve']);
        assert.equal(cmd.env[config.TOKEN_ENV], 's3cret');
        assert.ok(!JSON.stringify(config.buildInitializationOptions(settingsGetter())).includes('s3cret'));
    });

    it('finds the server on PATH, or says it is missing', () => {
        assert.ok(config.findExecutable('node', { PATH: process.env.PATH }));
        assert.equal(config.findExecutable('surely-not-a-codellama-binary', { PATH: process.env.PATH }), undefined);
        assert.equal(config.findExecutable('/nonexistent/codellama-lsp', {}), undefined);
    });

    it('keeps the server log levels', () => {
        assert.deepEqual(config.parseServerLogLine('2024-05-01 12:00:00,123 WARNING lsp.server: careful'), {
            level: 'warn',
            text: 'lsp.server: careful',
        });
        assert.deepEqual(config.parseServerLogLine('Traceback (most recent call last):'), {
            level: 'error',
            text: 'Traceback (most recent call last):',
        });
    });

    it('ignores arguments that are not an explanation', () => {
        assert.equal(protocol.explanationFromArgs(undefined), undefined);
        assert.equal(protocol.explanationFromArgs([{ title: 'x' }]), undefined);
        assert.equal(protocol.explanationFromArgs([{ markdown: 'm' }]).title, 'Explanation');
    });
});
