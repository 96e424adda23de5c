"""sms-stats: Tencent Cloud SMS delivery statistics (SendStatusStatistics) from an SCF function."""

__version__ = "0.1.0"
