package approvals

// SetTestHook lets the crash tests stop a write at a chosen step.
func SetTestHook(f func(step string)) { testHook = f }
