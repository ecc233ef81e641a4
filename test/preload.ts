// Loaded before every test file: no test may reach real AWS. Every endpoint points at loopback
// unless a test sets its own stand-in.
process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ??= "http://127.0.0.1:9";
process.env.AWS_EC2_METADATA_DISABLED ??= "false";
process.env.AWS_ACCESS_KEY_ID ??= "AKIDTEST";
process.env.AWS_SECRET_ACCESS_KEY ??= "test-secret";
process.env.AWS_REGION ??= "us-east-1";
process.env.AWS_ENDPOINT_URL ??= "http://127.0.0.1:9";
process.env.NO_COLOR = "1";
