// The palette commands. Each one turns the editor's state into a `codellama.run` request (or a local
// action) and the answer into something visible.

import * as vscode from 'vscode';
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageclient/node';
import { NotRunningError, ServerClient } from './client';
import type { ExplanationView } from './explanation';
import type { RunAction } from './protocol';
import type { Settings } from './settings';
import type { StatusBar } from './status';

export const COMMANDS = {
    explain: 'codellama.explain',
    refactor: 'codellama.refactor',
    ask: 'codellama.ask',
    toggle: 'codellama.toggle',
    setApiToken: 'codellama.setApiToken',
    clearApiToken: 'codellama.clearApiToken',
    showOutput: 'codellama.showOutput',
    restartServer: 'codellama.restartServer',
} as const;

export interface CommandDeps {
    client: ServerClient;
    settings: Settings;
    status: StatusBar;
    explanations: ExplanationView;
    output: vscode.LogOutputChannel;
}

export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
    const { client, settings, status, explanations, output } = deps;

    /** Runs a command, turning failures into one readable message. */
    const guarded =
        (what: string, body: () => Promise<void>) =>
        async (): Promise<void> => {
            try {
                await body();
            } catch (error) {
                report(output, what, error);
            }
        };

    const editor = (): vscode.TextEditor | undefined => {
        const active = vscode.window.activeTextEditor;
        if (!active) {
            void vscode.window.showInformationMessage('CodeLlama: open a file and select some code first.');
        }
        return active;
    };

    const showMarkdown = async (action: RunAction, title: string, active: vscode.TextEditor, instruction?: string) => {
        const where = client.where(active);
        const result = await client.run({ action, ...where, instruction, show: false });
        await explanations.show({ title, markdown: result.text, uri: result.uri, range: result.range });
    };

    return [
        vscode.commands.registerCommand(
            COMMANDS.explain,
            guarded('Explain', async () => {
                const active = editor();
                if (active) {
                    await showMarkdown('explain', 'Explain', active);
                }
            }),
        ),
        vscode.commands.registerCommand(
            COMMANDS.refactor,
            guarded('Refactor', async () => {
                const active = editor();
                if (!active) {
                    return;
                }
                const instruction = await vscode.window.showInputBox({
                    title: 'CodeLlama: Refactor',
                    prompt: active.selection.isEmpty
                        ? 'How should the function around the cursor change?'
                        : 'How should the selected code change?',
                    placeHolder: 'e.g. use pathlib instead of os.path',
                    ignoreFocusOut: true,
                });
                if (instruction === undefined) {
                    return;
                }
                // The server applies the result with workspace/applyEdit (a versioned edit, so a document
                // that changed meanwhile is left alone) and asks first when the result doesn't parse.
                const result = await client.run({ action: 'refactor', ...client.where(active), instruction, apply: true });
                vscode.window.setStatusBarMessage(
                    result.applied ? '$(check) CodeLlama: refactored' : '$(info) CodeLlama: refactoring not applied',
                    5000,
                );
            }),
        ),
        vscode.commands.registerCommand(
            COMMANDS.ask,
            guarded('Ask', async () => {
                const active = editor();
                if (!active) {
                    return;
                }
                const question = await vscode.window.showInputBox({
                    title: 'CodeLlama: Ask',
                    prompt: active.selection.isEmpty
                        ? 'Ask about the code around the cursor'
                        : 'Ask about the selected code',
                    placeHolder: 'e.g. why could this raise KeyError?',
                    ignoreFocusOut: true,
                });
                if (!question?.trim()) {
                    return;
                }
                const short = question.length > 60 ? `${question.slice(0, 57)}…` : question;
                await showMarkdown('ask', `Ask: ${short}`, active, question);
            }),
        ),
        vscode.commands.registerCommand(
            COMMANDS.toggle,
            guarded('Toggle completions', async () => {
                const enabled = await client.toggleCompletions();
                status.setCompletions(enabled);
                vscode.window.setStatusBarMessage(`CodeLlama: completions ${enabled ? 'on' : 'off'}`, 3000);
            }),
        ),
        vscode.commands.registerCommand(
            COMMANDS.setApiToken,
            guarded('Set API Token', async () => {
                const token = await vscode.window.showInputBox({
                    title: 'CodeLlama: API token',
                    prompt: 'The bearer token of the TGI server (kept in VS Code\'s secret storage; empty to remove it)',
                    password: true,
                    ignoreFocusOut: true,
                });
                if (token === undefined) {
                    return;
                }
                // Stored secrets change -> the server restarts with the token in its environment.
                await settings.setToken(token.trim() || undefined);
                vscode.window.setStatusBarMessage(`CodeLlama: API token ${token.trim() ? 'saved' : 'removed'}`, 3000);
            }),
        ),
        vscode.commands.registerCommand(
            COMMANDS.clearApiToken,
            guarded('Clear API Token', async () => {
                await settings.setToken(undefined);
                vscode.window.setStatusBarMessage('CodeLlama: API token removed', 3000);
            }),
        ),
        vscode.commands.registerCommand(COMMANDS.showOutput, () => output.show()),
        vscode.commands.registerCommand(
            COMMANDS.restartServer,
            guarded('Restart server', () => client.restart()),
        ),
    ];
}

function report(output: vscode.LogOutputChannel, what: string, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    output.error(`${what} failed: ${message}`);
    if (error instanceof ResponseError) {
        if (error.code === LSPErrorCodes.RequestCancelled) {
            return;
        }
        if (error.code === ErrorCodes.InternalError) {
            // The server has already said so (window/showMessage, rate-limited) and the status bar shows the
            // error: a second pop-up would only repeat it.
            vscode.window.setStatusBarMessage(`$(error) CodeLlama: ${what} failed: ${message}`, 10000);
            return;
        }
    }
    const actions = error instanceof NotRunningError ? ['Restart Server', 'Show Output'] : ['Show Output'];
    void vscode.window.showErrorMessage(`CodeLlama: ${what} failed: ${message}`, ...actions).then((choice) => {
        if (choice === 'Show Output') {
            output.show();
        } else if (choice === 'Restart Server') {
            void vscode.commands.executeCommand(COMMANDS.restartServer);
        }
    });
}
