// The language client: starting `codellama-lsp serve`, the middleware that keeps VS Code's side of the
// protocol (explanations rendered here, not by the server; the commands resolved code actions carry run
// here, where VS Code would drop them), and typed access to the server's commands.

import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
    DidChangeConfigurationNotification,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    RevealOutputChannelOn,
    State,
    type Executable,
    type StdioOptions,
} from 'vscode-languageclient/node';
import { findExecutable, parseServerLogLine } from './config';
import {
    explanationFromArgs,
    Explanation,
    isPartialParams,
    isRunResult,
    isStatusParams,
    PARTIAL_METHOD,
    PartialParams,
    RUN_COMMAND,
    RunArgs,
    RunResult,
    SHOW_EXPLANATION_COMMAND,
    STATUS_METHOD,
    StatusParams,
    TOGGLE_COMPLETIONS_COMMAND,
} from './protocol';
import type { Settings } from './settings';
import type { ClientState } from './statusModel';

export interface ClientHooks {
    onStatus(params: StatusParams): void;
    /** The answer so far of an action that is running (codellama/partial). */
    onPartial(params: PartialParams): void;
    onClientState(state: ClientState, message?: string): void;
    showExplanation(explanation: Explanation): Promise<void>;
    /** False after "Toggle completions" turned them off: no inline completion request is sent. */
    completionsEnabled(): boolean;
}

export class NotRunningError extends Error {
    constructor() {
        super('the CodeLlama server is not running (see "CodeLlama: Show output", or "CodeLlama: Restart server")');
    }
}

const stdioOptions: Required<StdioOptions> = {
    // With the stdio transport stdout carries the protocol; this is only used by other transports.
    stdout: (input, channel) => {
        readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => channel.info(line));
    },
    // The server logs to stderr (lsp/log.py): keep each line's level instead of showing all as errors.
    stderr: (input, channel) => {
        readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => {
            const { level, text } = parseServerLogLine(line);
            channel[level](text);
        });
    },
};

export class ServerClient implements vscode.Disposable {
    private client: LanguageClient | undefined;
    private starting: Promise<void> | undefined;

    constructor(
        private readonly settings: Settings,
        private readonly output: vscode.LogOutputChannel,
        private readonly hooks: ClientHooks,
    ) {}

    /** Starts the server; a missing executable is reported (status bar, message), not thrown. */
    start(): Promise<void> {
        this.starting ??= this.doStart().finally(() => {
            this.starting = undefined;
        });
        return this.starting;
    }

    private async doStart(): Promise<void> {
        this.hooks.onClientState('starting');
        const command = await this.settings.serverCommand();
        const found = findExecutable(command.command, command.env);
        if (!found) {
            const message =
                `"${command.command}" was not found${command.command.includes('/') ? '' : ' on PATH'}. ` +
                'Install codellama-lsp (pip install it from its repository) or set "codellama.serverPath".';
            this.output.error(message);
            this.hooks.onClientState('notFound', message);
            void vscode.window.showErrorMessage(`CodeLlama: ${message}`, 'Open Settings', 'Show Output').then((choice) => {
                if (choice === 'Open Settings') {
                    void vscode.commands.executeCommand('workbench.action.openSettings', 'codellama.serverPath');
                } else if (choice === 'Show Output') {
                    this.output.show();
                }
            });
            return;
        }
        this.output.info(`starting ${found} ${command.args.join(' ')}`);
        const folder = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === 'file');
        const server: Executable = {
            command: found,
            args: command.args,
            options: { env: command.env, cwd: folder?.uri.fsPath },
        };
        const client = new LanguageClient('codellama', 'CodeLlama', server, this.clientOptions());
        client.onDidChangeState((event) => {
            if (event.newState === State.Starting) {
                this.hooks.onClientState('starting');
            } else if (event.newState === State.Running) {
                this.hooks.onClientState('running');
            } else if (event.newState === State.Stopped) {
                this.hooks.onClientState('stopped');
            }
        });
        client.onNotification(STATUS_METHOD, (params: unknown) => {
            if (isStatusParams(params)) {
                this.hooks.onStatus(params);
            }
        });
        client.onNotification(PARTIAL_METHOD, (params: unknown) => {
            if (isPartialParams(params)) {
                this.hooks.onPartial(params);
            }
        });
        this.client = client;
        try {
            await client.start();
        } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            this.output.error(`the server did not start: ${message}`);
            this.hooks.onClientState('stopped', message);
            void vscode.window.showErrorMessage(`CodeLlama: the server did not start: ${message}`, 'Show Output').then(
                (choice) => choice && this.output.show(),
            );
        }
    }

    private clientOptions(): LanguageClientOptions {
        const hooks = this.hooks;
        const settings = this.settings;
        return {
            documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
            outputChannel: this.output,
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            initializationOptions: () => settings.initializationOptions(),
            stdioOptions,
            middleware: {
                // Explanations come back from codeAction/resolve as this command: render them here instead
                // of letting the server write a file and ask for window/showDocument.
                executeCommand: async (command, args, next) => {
                    if (command === SHOW_EXPLANATION_COMMAND) {
                        const explanation = explanationFromArgs(args);
                        if (explanation) {
                            await hooks.showExplanation(explanation);
                            return undefined;
                        }
                    }
                    return next(command, args);
                },
                // VS Code drops a command that codeAction/resolve adds to an action once the code action menu
                // has closed (its extension host forgets the menu's commands when the menu is released, which
                // happens before a resolve that runs the model returns); the edit survives. The server's
                // commands (show an explanation, review a proposal) are therefore run here, as VS Code would
                // have run them, and taken off the action so that they never run twice.
                resolveCodeAction: async (item, token, next) => {
                    const resolved = await next(item, token);
                    const command = resolved?.command;
                    if (resolved && command && this.isServerCommand(command.command)) {
                        resolved.command = undefined;
                        void this.runResolvedCommand(command);
                    }
                    return resolved;
                },
                // The server debounces typed requests (codellama.completion.debounceMs), drops superseded ones and
                // answers from its cache; VS Code cancels the requests the user typed past. Only skip the round
                // trip while completions are toggled off.
                provideInlineCompletionItems: (document, position, context, token, next) =>
                    hooks.completionsEnabled() ? next(document, position, context, token) : null,
                // The suggestion list would ask the model again for what inline completion already shows.
                provideCompletionItem: (document, position, context, token, next) =>
                    settings.suggestions ? next(document, position, context, token) : undefined,
            },
        };
    }

    /** A command the server executes (workspace/executeCommand), as it announced them. */
    private isServerCommand(name: string): boolean {
        return this.client?.initializeResult?.capabilities.executeCommandProvider?.commands.includes(name) ?? false;
    }

    /** Runs a resolved code action's command through the command the language client registered for it
     * (an explanation is shown by the middleware above; a review asks the user, up to minutes). */
    private async runResolvedCommand(command: vscode.Command): Promise<void> {
        try {
            await vscode.commands.executeCommand(command.command, ...(command.arguments ?? []));
        } catch (error) {
            this.output.error(`${command.title}: ${error instanceof Error ? error.message : String(error)}`);
        }
    }

    async stop(): Promise<void> {
        await this.starting;
        const client = this.client;
        this.client = undefined;
        if (client) {
            try {
                await client.dispose(5000);
            } catch (error) {
                this.output.warn(`stopping the server: ${String(error)}`);
            }
        }
        this.hooks.onClientState('stopped');
    }

    async restart(): Promise<void> {
        await this.stop();
        await this.start();
    }

    /** workspace/didChangeConfiguration with the settings built the same way as the initialization options. */
    async sendSettings(): Promise<void> {
        const client = this.client;
        if (client?.isRunning()) {
            await client.sendNotification(DidChangeConfigurationNotification.type, this.settings.didChangeConfiguration());
        }
    }

    private running(): LanguageClient {
        if (!this.client?.isRunning()) {
            throw new NotRunningError();
        }
        return this.client;
    }

    async run(args: RunArgs, token?: vscode.CancellationToken): Promise<RunResult> {
        const client = this.running();
        const result: unknown = await client.sendRequest(
            ExecuteCommandRequest.type,
            { command: RUN_COMMAND, arguments: [args] },
            token,
        );
        if (!isRunResult(result)) {
            throw new Error(`unexpected answer to ${RUN_COMMAND}: ${JSON.stringify(result)}`);
        }
        return result;
    }

    async toggleCompletions(enabled?: boolean): Promise<boolean> {
        const client = this.running();
        const result: unknown = await client.sendRequest(ExecuteCommandRequest.type, {
            command: TOGGLE_COMPLETIONS_COMMAND,
            arguments: enabled === undefined ? [] : [enabled],
        });
        if (typeof result !== 'boolean') {
            throw new Error(`unexpected answer to ${TOGGLE_COMPLETIONS_COMMAND}: ${JSON.stringify(result)}`);
        }
        return result;
    }

    /** The document and selection as the server names them. */
    where(editor: vscode.TextEditor): Pick<RunArgs, 'uri' | 'range'> {
        const client = this.running();
        return {
            uri: client.code2ProtocolConverter.asUri(editor.document.uri),
            range: client.code2ProtocolConverter.asRange(editor.selection),
        };
    }

    dispose(): void {
        void this.stop();
    }
}
