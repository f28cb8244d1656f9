extension LMTPEngine {
    /// MAIL FROM's SIZE= in the transaction under way: a server checks a
    /// recipient's room for it at RCPT time.
    public var declaredSize: Int? { transaction?.declaredSize }
}
