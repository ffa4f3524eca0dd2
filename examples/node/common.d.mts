export declare const endpoints: string
export declare function ensureTopic(name: string, messageType?: string): Promise<void>
export declare const runId: string
