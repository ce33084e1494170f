// VS Code's side of the settings: reading the `codellama` section, the API token in SecretStorage, and
// telling the rest of the extension what changed.

import * as vscode from 'vscode';
import {
    buildDidChangeConfiguration,
    buildInitializationOptions,
    buildServerCommand,
    InitializationOptions,
    PathContext,
    SECTION,
    ServerCommand,
    SettingGetter,
} from './config';

const TOKEN_KEY = 'codellama.apiToken';

export type SettingsChange = 'server' | 'settings';

export class Settings implements vscode.Disposable {
    private readonly changed = new vscode.EventEmitter<SettingsChange>();
    /** 'server': the command line or the token changed (restart); 'settings': send didChangeConfiguration. */
    readonly onDidChange = this.changed.event;
    private readonly disposables: vscode.Disposable[] = [this.changed];

    constructor(private readonly secrets: vscode.SecretStorage) {
        this.disposables.push(
            vscode.workspace.onDidChangeConfiguration((event) => {
                if (!event.affectsConfiguration(SECTION)) {
                    return;
                }
                const server =
                    event.affectsConfiguration(`${SECTION}.serverPath`) || event.affectsConfiguration(`${SECTION}.serverArgs`);
                this.changed.fire(server ? 'server' : 'settings');
            }),
            secrets.onDidChange((event) => {
                if (event.key === TOKEN_KEY) {
                    this.changed.fire('server');
                }
            }),
        );
    }

    private getter(): SettingGetter {
        const config = vscode.workspace.getConfiguration(SECTION);
        return (key) => config.get<unknown>(key);
    }

    private pathContext(): PathContext {
        const folder = vscode.workspace.workspaceFolders?.[0];
        return { workspaceFolder: folder?.uri.scheme === 'file' ? folder.uri.fsPath : undefined };
    }

    initializationOptions(): InitializationOptions {
        // The explanation view shows answers as they are written: ask the server for them.
        return { ...buildInitializationOptions(this.getter(), this.pathContext()), streaming: true };
    }

    didChangeConfiguration(): { settings: InitializationOptions } {
        return buildDidChangeConfiguration(this.getter(), this.pathContext());
    }

    async serverCommand(): Promise<ServerCommand> {
        return buildServerCommand(this.getter(), await this.token(), process.env, this.pathContext());
    }

    get backend(): string {
        return vscode.workspace.getConfiguration(SECTION).get<string>('backend') ?? 'auto';
    }

    /** Also ask for completions in the suggestion list (client-only; inline completion is the default). */
    get suggestions(): boolean {
        return vscode.workspace.getConfiguration(SECTION).get<boolean>('completion.suggestions') === true;
    }

    async token(): Promise<string | undefined> {
        return (await this.secrets.get(TOKEN_KEY)) || undefined;
    }

    async setToken(token: string | undefined): Promise<void> {
        if (token) {
            await this.secrets.store(TOKEN_KEY, token);
        } else {
            await this.secrets.delete(TOKEN_KEY);
        }
    }

    dispose(): void {
        for (const d of this.disposables) {
            d.dispose();
        }
    }
}
