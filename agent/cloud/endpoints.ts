// Which endpoint an AWS client talks to. Pure: the config and the environment are passed in.
import type { AwsService, Config } from "../manifest/schema.ts";

/** The SDK's AWS_ENDPOINT_URL_<SERVICE> name for each service (its serviceId, uppercased, spaces as _). */
export const ENDPOINT_ENV: Record<AwsService, string> = {
  ec2: "AWS_ENDPOINT_URL_EC2",
  ssm: "AWS_ENDPOINT_URL_SSM",
  secretsmanager: "AWS_ENDPOINT_URL_SECRETS_MANAGER",
  elbv2: "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
  dynamodb: "AWS_ENDPOINT_URL_DYNAMODB",
};

/**
 * aws.endpoints.<service> wins over AWS_ENDPOINT_URL_<SERVICE>, which wins over aws.endpoint
 * (the default for every service). null: the SDK decides (AWS_ENDPOINT_URL, then the real service).
 */
export function endpointFor(aws: Config["aws"], service: AwsService, env: Record<string, string | undefined>): string | null {
  return aws.endpoints?.[service] ?? (env[ENDPOINT_ENV[service]] || null) ?? aws.endpoint ?? null;
}
