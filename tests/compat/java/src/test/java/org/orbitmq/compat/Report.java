package org.orbitmq.compat;

import java.util.Optional;
import org.junit.jupiter.api.extension.BeforeTestExecutionCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/** Prints one PASS/FAIL line per test (Maven runs quiet, so this is the visible progress). */
public class Report implements TestWatcher, BeforeTestExecutionCallback {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(Report.class);

    @Override
    public void beforeTestExecution(ExtensionContext ctx) {
        ctx.getStore(NS).put("start", System.nanoTime());
    }

    private static String took(ExtensionContext ctx) {
        Long start = ctx.getStore(NS).get("start", Long.class);
        return start == null ? "" : String.format(" (%.1f s)", (System.nanoTime() - start) / 1e9);
    }

    private static String name(ExtensionContext ctx) {
        return ctx.getRequiredTestClass().getSimpleName() + "." + ctx.getDisplayName();
    }

    @Override
    public void testSuccessful(ExtensionContext ctx) {
        System.out.println("PASS " + name(ctx) + took(ctx));
    }

    @Override
    public void testFailed(ExtensionContext ctx, Throwable cause) {
        System.out.println("FAIL " + name(ctx) + took(ctx) + ": " + cause);
    }

    @Override
    public void testAborted(ExtensionContext ctx, Throwable cause) {
        System.out.println("ABORTED " + name(ctx) + took(ctx) + ": " + cause);
    }

    @Override
    public void testDisabled(ExtensionContext ctx, Optional<String> reason) {
        System.out.println("DISABLED " + name(ctx));
    }
}
