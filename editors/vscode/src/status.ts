// The status bar item: idle / thinking / error and the model, from the server's codellama/status.

import * as vscode from 'vscode';
import type { StatusParams } from './protocol';
import { applyStatus, ClientState, describeStatus, initialSnapshot, StatusSnapshot } from './statusModel';

export class StatusBar implements vscode.Disposable {
    private readonly item: vscode.StatusBarItem;
    private snapshot: StatusSnapshot;

    constructor(configuredBackend: string, clickCommand: string) {
        this.item = vscode.window.createStatusBarItem('codellama.status', vscode.StatusBarAlignment.Right, 100);
        this.item.name = 'CodeLlama';
        this.item.command = clickCommand;
        this.snapshot = initialSnapshot(configuredBackend);
        this.render();
        this.item.show();
    }

    get completionsEnabled(): boolean {
        return this.snapshot.completionsEnabled;
    }

    get state(): StatusSnapshot {
        return this.snapshot;
    }

    /** A codellama/status notification from the server. */
    onServerStatus(params: StatusParams): void {
        this.update(applyStatus(this.snapshot, params));
    }

    setClient(client: ClientState, message = ''): void {
        // A new server process knows nothing of a previous one's model or toggle.
        const fresh = client === 'starting' ? { server: 'idle' as const, completionsEnabled: true } : {};
        this.update({ ...this.snapshot, ...fresh, client, message });
    }

    setCompletions(enabled: boolean): void {
        this.update({ ...this.snapshot, completionsEnabled: enabled });
    }

    setConfiguredBackend(backend: string): void {
        this.update({ ...this.snapshot, configuredBackend: backend });
    }

    private update(next: StatusSnapshot): void {
        this.snapshot = next;
        this.render();
    }

    private render(): void {
        const view = describeStatus(this.snapshot);
        this.item.text = view.text;
        this.item.tooltip = view.tooltip;
        this.item.backgroundColor =
            view.alert === undefined ? undefined : new vscode.ThemeColor(`statusBarItem.${view.alert}Background`);
    }

    dispose(): void {
        this.item.dispose();
    }
}
